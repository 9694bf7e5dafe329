import { join, resolve } from 'node:path';
import { FormatError } from '@tematrainer/tensor';
import { describe, expect, it } from 'vitest';
import { f32ToF16 } from './dtypes.js';
import { type GgufValue, openGguf } from './gguf.js';
import { ggufLlamaConfig, ggufTokenizerData } from './gguf-llama.js';
import { bytesSource } from './source.js';

const FIXTURES = resolve(import.meta.dirname, '../../../../shared/fixtures');
const STORIES_GGUF = join(FIXTURES, 'stories260K/stories260K.gguf');

/** Little-endian byte builder for hand-made GGUF files. */
class Builder {
  bytes: number[] = [];
  u8(v: number) { this.bytes.push(v & 0xff); return this; }
  u32(v: number) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); this.bytes.push(...b); return this; }
  u64(v: bigint | number) { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(v), true); this.bytes.push(...b); return this; }
  raw(values: ArrayLike<number>) { for (let i = 0; i < values.length; i++) this.bytes.push(values[i]!); return this; }
  string(s: string) { const b = new TextEncoder().encode(s); return this.u64(b.length).raw(b); }
  pad(alignment: number) { while (this.bytes.length % alignment) this.bytes.push(0); return this; }
  build() { return new Uint8Array(this.bytes); }
}

type Typed = [type: number, value: unknown];

function writeValue(b: Builder, [type, value]: Typed): void {
  const scratch = new DataView(new ArrayBuffer(8));
  switch (type) {
    case 0: case 7: b.u8(value as number); break;
    case 1: scratch.setInt8(0, value as number); b.u8(scratch.getUint8(0)); break;
    case 2: scratch.setUint16(0, value as number, true); b.raw(new Uint8Array(scratch.buffer, 0, 2)); break;
    case 3: scratch.setInt16(0, value as number, true); b.raw(new Uint8Array(scratch.buffer, 0, 2)); break;
    case 4: b.u32(value as number); break;
    case 5: scratch.setInt32(0, value as number, true); b.raw(new Uint8Array(scratch.buffer, 0, 4)); break;
    case 6: scratch.setFloat32(0, value as number, true); b.raw(new Uint8Array(scratch.buffer, 0, 4)); break;
    case 8: b.string(value as string); break;
    case 10: b.u64(value as bigint); break;
    case 11: scratch.setBigInt64(0, value as bigint, true); b.raw(new Uint8Array(scratch.buffer)); break;
    case 12: scratch.setFloat64(0, value as number, true); b.raw(new Uint8Array(scratch.buffer)); break;
    case 9: {
      const [itemType, items] = value as [number, unknown[]];
      b.u32(itemType).u64(items.length);
      for (const item of items) writeValue(b, [itemType, item]);
      break;
    }
  }
}

interface TensorSpec { name: string; dims: number[]; type: number; data: Uint8Array }

function buildGguf(version: number, kv: [string, Typed][], tensors: TensorSpec[], alignment = 32): Uint8Array {
  const b = new Builder().u32(0x46554747).u32(version).u64(tensors.length).u64(kv.length);
  for (const [key, typed] of kv) {
    b.string(key).u32(typed[0]);
    writeValue(b, typed);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    offset += Math.ceil(t.data.length / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    b.string(t.name).u32(t.dims.length);
    for (const d of t.dims) b.u64(d);
    b.u32(t.type).u64(offsets[i]!);
  });
  b.pad(alignment);
  for (const t of tensors) b.raw(t.data).pad(alignment);
  return b.build();
}

function f16Bytes(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, i) => new DataView(out.buffer).setUint16(i * 2, f32ToF16(v), true));
  return out;
}

describe('GGUF fixture stories260K', () => {
  it('reads the header, metadata and tensor table', async () => {
    const gguf = await openGguf(STORIES_GGUF);
    expect(gguf.version).toBe(3);
    expect(gguf.tensors.size).toBe(48);
    expect(gguf.metadata.size).toBe(19);
    expect(gguf.alignment).toBe(32);
    expect(gguf.dataOffset).toBe(14176);
    expect(gguf.metadata.get('general.architecture')).toBe('llama');
    expect(gguf.metadata.get('llama.embedding_length')).toBe(64);
    expect(gguf.metadata.get('llama.rope.dimension_count')).toBe(8);
    expect(gguf.tensors.get('blk.0.ffn_down.weight')).toEqual({ type: 0, dims: [172, 64], shape: [64, 172], offset: expect.any(Number) });

    // The tensors fill the data section up to the end of the file.
    const ends = [...gguf.tensors.values()].map((t) => gguf.dataOffset + t.offset + t.dims.reduce((a, b) => a * b, 1) * 4);
    expect(Math.max(...ends)).toBe(1185376);
  });

  it('maps llama keys to a Hugging Face config', async () => {
    const config = ggufLlamaConfig(await openGguf(STORIES_GGUF));
    expect(config).toEqual({
      hidden_size: 64,
      intermediate_size: 172,
      num_hidden_layers: 5,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      rms_norm_eps: Math.fround(1e-5),
      rope_theta: 10000,
      max_position_embeddings: 2048,
      vocab_size: 512,
      head_dim: 8,
    });
  });

  it('reads the embedded tokenizer', async () => {
    const tokenizer = ggufTokenizerData(await openGguf(STORIES_GGUF));
    expect(tokenizer.model).toBe('llama');
    expect(tokenizer.tokens.length).toBe(512);
    expect(tokenizer.tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(tokenizer.tokens[259]).toBe('▁t');
    expect(tokenizer.scores[260]).toBe(-1);
    expect(tokenizer.tokenTypes.slice(0, 4)).toEqual([2, 3, 3, 6]);
    expect([tokenizer.bosId, tokenizer.eosId, tokenizer.unkId]).toEqual([1, 2, 0]);
    expect(tokenizer.addBos).toBe(true);
    expect(tokenizer.addSpacePrefix).toBe(true);
  });

  it('reads the same first floats as the llama2.c checkpoint', async () => {
    const embedding = await (await openGguf(STORIES_GGUF)).read('token_embd.weight');
    expect(embedding.shape).toEqual([512, 64]);
    expect(embedding.data[0]).toBeCloseTo(-0.29474878, 7);
    expect(embedding.data[1]).toBeCloseTo(0.56189561, 7);
    expect(embedding.data[2]).toBeCloseTo(0.17542253, 7);
  });
});

describe('GGUF synthetic files', () => {
  const kvAll: [string, Typed][] = [
    ['u8', [0, 255]], ['i8', [1, -128]], ['u16', [2, 65535]], ['i16', [3, -32768]], ['u32', [4, 4294967295]],
    ['i32', [5, -2147483648]], ['f32', [6, 1.5]], ['bool', [7, 1]], ['str', [8, 'héllo']], ['u64', [10, 2n ** 63n]],
    ['i64', [11, -5n]], ['f64', [12, Math.PI]],
    ['nested', [9, [9, [[4, [1, 2]], [8, ['a', 'b']]]]]],
    ['general.alignment', [4, 64]],
  ];

  it('parses every metadata value type in versions 2 and 3', async () => {
    for (const version of [2, 3]) {
      const gguf = await openGguf(bytesSource(buildGguf(version, kvAll, [], 64), 'all.gguf'));
      const expected: Record<string, GgufValue> = {
        u8: 255, i8: -128, u16: 65535, i16: -32768, u32: 4294967295, i32: -2147483648, f32: 1.5, bool: true,
        str: 'héllo', u64: 2n ** 63n, i64: -5, f64: Math.PI, nested: [[1, 2], ['a', 'b']], 'general.alignment': 64,
      };
      expect(Object.fromEntries(gguf.metadata)).toEqual(expected);
      expect(gguf.version).toBe(version);
      expect(gguf.alignment).toBe(64);
    }
  });

  it('dequantizes F16, Q8_0 and Q4_0', async () => {
    // Q8_0: one block, scale 0.5, quants -16..15.
    const q8 = new Builder().raw(f16Bytes([0.5])).raw(Array.from({ length: 32 }, (_, i) => (i - 16) & 0xff)).build();
    // Q4_0: one block, scale 0.25; byte i holds q = i (low nibble, element i) and q = 15 - i (high nibble, element 16 + i).
    const q4 = new Builder().raw(f16Bytes([0.25])).raw(Array.from({ length: 16 }, (_, i) => i | ((15 - i) << 4))).build();
    const bytes = buildGguf(3, [], [
      { name: 'half', dims: [3, 1], type: 1, data: f16Bytes([1, -2.5, 0.125]) },
      { name: 'q8', dims: [32], type: 8, data: q8 },
      { name: 'q4', dims: [32], type: 2, data: q4 },
      { name: 'k', dims: [256], type: 12, data: new Uint8Array(144) },
    ]);
    const gguf = await openGguf(bytesSource(bytes, 'quant.gguf'));

    const half = await gguf.read('half');
    expect(half.shape).toEqual([1, 3]);
    expect([...half.data]).toEqual([1, -2.5, 0.125]);
    expect([...(await gguf.read('q8')).data]).toEqual(Array.from({ length: 32 }, (_, i) => (i - 16) * 0.5));
    const q4Expected = [...Array.from({ length: 16 }, (_, i) => (i - 8) * 0.25), ...Array.from({ length: 16 }, (_, i) => (15 - i - 8) * 0.25)];
    expect([...(await gguf.read('q4')).data]).toEqual(q4Expected);
    await expect(gguf.read('k')).rejects.toThrow(/quant\.gguf: tensor "k" has ggml type Q4_K, which this reader cannot dequantize/);
  });
});

describe('GGUF bad input', () => {
  const reject = async (bytes: Uint8Array, pattern: RegExp) => {
    const promise = openGguf(bytesSource(bytes, 'bad.gguf'));
    await expect(promise).rejects.toThrow(FormatError);
    await expect(promise).rejects.toThrow(pattern);
  };

  it('rejects a bad magic or version', async () => {
    await reject(new Builder().u32(0x12345678).u32(3).u64(0).u64(0).build(), /bad\.gguf: bad magic 0x12345678/);
    await reject(new Builder().u32(0x46554747).u32(1).u64(0).u64(0).build(), /GGUF version 1 is not supported/);
    await reject(new Builder().u32(0x46554747).u32(4).u64(0).u64(0).build(), /GGUF version 4/);
  });

  it('rejects absurd counts and lengths without allocating them', async () => {
    await reject(new Builder().u32(0x46554747).u32(3).u64(2n ** 40n).u64(0).build(), /tensor count is 1099511627776, which cannot fit/);
    await reject(new Builder().u32(0x46554747).u32(3).u64(0).u64(2n ** 64n - 1n).build(), /key-value count/);
    await reject(new Builder().u32(0x46554747).u32(3).u64(0).u64(1).u64(2n ** 40n).raw(new Uint8Array(16)).build(), /length of key of metadata entry 0 is 1099511627776/);
    await reject(new Builder().u32(0x46554747).u32(3).u64(0).u64(1).string('a').u32(9).u32(6).u64(2n ** 40n).build(), /element count of "a"/);
  });

  it('rejects truncated headers and tensors past the end', async () => {
    const full = buildGguf(3, [['name', [8, 'x']]], [{ name: 't', dims: [4], type: 0, data: new Uint8Array(16) }]);
    // 55 bytes end inside the first tensor's name, after the counts and the metadata.
    await reject(full.subarray(0, 55), /header ends at byte 55 while reading .* is the file truncated/);
    // The last 16 bytes are alignment padding after the tensor.
    await reject(full.subarray(0, full.length - 20), /tensor "t" \(16 bytes at data offset 0\) ends past the end/);
  });

  it('rejects unknown value types, bad bools and bad UTF-8', async () => {
    await reject(new Builder().u32(0x46554747).u32(3).u64(0).u64(1).string('a').u32(13).u64(0).build(), /metadata "a" has unknown value type 13/);
    await reject(new Builder().u32(0x46554747).u32(3).u64(0).u64(1).string('a').u32(7).u8(2).build(), /"a" is a bool with byte value 2/);
    await reject(new Builder().u32(0x46554747).u32(3).u64(0).u64(1).u64(2).raw([0xc3, 0x28]).u32(4).u32(0).build(), /not valid UTF-8/);
  });

  it('rejects a bad alignment and misaligned or unblocked tensors', async () => {
    await reject(buildGguf(3, [['general.alignment', [4, 12]]], []), /general\.alignment must be a positive multiple of 8, found 12/);
    const q8 = { name: 'q', dims: [16, 2], type: 8, data: new Uint8Array(34) };
    await reject(buildGguf(3, [], [q8]), /tensor "q" of type Q8_0 has ne0 = 16, not a multiple of its block size 32/);
    const bytes = buildGguf(3, [], [{ name: 't', dims: [1], type: 0, data: new Uint8Array(4) }]);
    // The tensor offset is the last 8 bytes before the padding that starts the data section.
    const header = new Builder().u32(0x46554747).u32(3).u64(1).u64(0).string('t').u32(1).u64(1).u32(0).u64(4).build();
    bytes.set(header);
    await reject(bytes, /tensor "t" offset 4 is not a multiple of the alignment 32/);
  });
});
