import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FormatError } from '@tematrainer/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f32ToBf16, f32ToF16 } from './dtypes.js';
import { encodeSafetensors, openSafetensors, writeSafetensors } from './safetensors.js';
import { openModelWeights, openShardedSafetensors } from './sharded.js';
import { bytesSource } from './source.js';

const FIXTURES = resolve(import.meta.dirname, '../../../../shared/fixtures');

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'io-safetensors-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

/** Builds a safetensors file from a header object and raw data bytes, unvalidated. */
function rawFile(header: unknown, data: Uint8Array, headerText?: Uint8Array): Uint8Array {
  const json = headerText ?? new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

async function expectFormatError(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  const promise = (async () => {
    const file = await openSafetensors(bytesSource(bytes, 'bad.safetensors'));
    for (const name of file.tensors.keys()) await file.read(name);
  })();
  await expect(promise).rejects.toThrow(FormatError);
  await expect(promise).rejects.toThrow(pattern);
}

describe('safetensors round trip', () => {
  it('keeps every dtype, shape and value', async () => {
    const tensors = {
      f64: { dtype: 'F64' as const, shape: [2], data: new Float64Array([Math.PI, -1e300]) },
      f32: { dtype: 'F32' as const, shape: [2, 3], data: new Float32Array([1, -2.5, 3e-8, Infinity, -0, 6]) },
      f16: { dtype: 'F16' as const, shape: [3], data: new Uint16Array([f32ToF16(1.5), f32ToF16(-65504), f32ToF16(2 ** -24)]) },
      bf16: { dtype: 'BF16' as const, shape: [1, 2], data: new Uint16Array([f32ToBf16(3.140625), f32ToBf16(-1e30)]) },
      i64: { dtype: 'I64' as const, shape: [3], data: new BigInt64Array([1n, -(2n ** 62n), 2n ** 40n]) },
      i32: { dtype: 'I32' as const, shape: [2], data: new Int32Array([-2147483648, 7]) },
      i16: { dtype: 'I16' as const, shape: [1], data: new Int16Array([-300]) },
      i8: { dtype: 'I8' as const, shape: [2], data: new Int8Array([-128, 127]) },
      u64: { dtype: 'U64' as const, shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) },
      u32: { dtype: 'U32' as const, shape: [1], data: new Uint32Array([4294967295]) },
      u16: { dtype: 'U16' as const, shape: [1], data: new Uint16Array([65535]) },
      u8: { dtype: 'U8' as const, shape: [3], data: new Uint8Array([0, 128, 255]) },
      bool: { dtype: 'BOOL' as const, shape: [2], data: new Uint8Array([1, 0]) },
      f8: { dtype: 'F8_E4M3' as const, shape: [1], data: new Uint8Array([0x38]) },
      scalar: { dtype: 'F32' as const, shape: [], data: new Float32Array([42]) },
      empty: { dtype: 'F32' as const, shape: [0, 4], data: new Float32Array(0) },
    };
    const path = join(folder, 'all.safetensors');
    await writeSafetensors(path, tensors, { format: 'pt', note: 'round trip' });

    const file = await openSafetensors(path);
    expect(file.metadata).toEqual({ format: 'pt', note: 'round trip' });
    expect([...file.tensors.keys()]).toEqual(Object.keys(tensors));
    for (const [name, tensor] of Object.entries(tensors)) {
      const read = await file.read(name);
      expect(read.dtype).toBe(tensor.dtype);
      expect(read.shape).toEqual(tensor.shape);
      expect(read.data).toEqual(tensor.data);
    }
  });

  it('converts f16, bf16 and f8 to f32 on request', async () => {
    const bytes = encodeSafetensors({
      half: { dtype: 'F16', shape: [4], data: [1.5, -2, 65504, 0.1] },
      brain: { dtype: 'BF16', shape: [2], data: [3.140625, -0.5] },
      fp8: { dtype: 'F8_E4M3', shape: [2], data: new Uint8Array([0x38, 0xc0]) },
    });
    const file = await openSafetensors(bytesSource(concat(bytes), 'mem.safetensors'));

    const half = await file.read('half', { as: 'f32' });
    expect(half.dtype).toBe('F32');
    expect(half.data).toBeInstanceOf(Float32Array);
    expect([...half.data.slice(0, 3)]).toEqual([1.5, -2, 65504]);
    expect(half.data[3]).toBeCloseTo(0.0999755859375, 10);
    expect((await file.read('half')).data).toBeInstanceOf(Uint16Array);
    expect([...(await file.read('brain', { as: 'f32' })).data]).toEqual([3.140625, -0.5]);
    expect([...(await file.read('fp8', { as: 'f32' })).data]).toEqual([1, -2]);
  });

  it('reads i64 as i32 with a range check', async () => {
    const bytes = concat(encodeSafetensors({
      ids: { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, -100n, 2147483647n]) },
      big: { dtype: 'I64', shape: [1], data: new BigInt64Array([2n ** 31n]) },
    }));
    const file = await openSafetensors(bytesSource(bytes, 'ids.safetensors'));
    const ids = await file.read('ids', { as: 'i32' });
    expect(ids.data).toEqual(new Int32Array([1, -100, 2147483647]));
    await expect(file.read('big', { as: 'i32' })).rejects.toThrow(/ids\.safetensors: tensor "big" element 0 is 2147483648/);
  });

  it('pads the header with spaces to 8 bytes', async () => {
    const chunks = encodeSafetensors({ a: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) } });
    const header = chunks[0]!;
    const length = Number(new DataView(header.buffer).getBigUint64(0, true));
    expect(length % 8).toBe(0);
    const text = new TextDecoder().decode(header.subarray(8));
    expect(text).toBe('{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}'.padEnd(length, ' '));
  });

  it('rejects data that does not match the shape', () => {
    expect(() => encodeSafetensors({ a: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } })).toThrow(/shape \[2,2\] has 4 elements, but the data has 3/);
  });
});

describe('safetensors fixtures', () => {
  it('reads the PEFT adapter header and values', async () => {
    const file = await openSafetensors(join(FIXTURES, 'peft-adapter-gpt2-tigrinya/adapter_model.safetensors'));
    expect(file.headerLength).toBe(9064);
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(file.tensors.size).toBe(72);
    expect([...file.tensors.values()].every((t) => t.dtype === 'F32')).toBe(true);
    const a = await file.read('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight', { as: 'f32' });
    expect(a.shape).toEqual([8, 768]);
    expect(a.data.length).toBe(8 * 768);
    expect(a.data.every(Number.isFinite)).toBe(true);
    expect(a.data.some((v) => v !== 0)).toBe(true);
  });

  it('reads the golden input ids', async () => {
    const file = await openSafetensors(join(FIXTURES, 'golden/tema_golden.safetensors'));
    const ids = await file.read('input_ids');
    expect(ids.dtype).toBe('I64');
    expect(ids.shape).toEqual([2, 16]);
    expect(ids.data[0]).toBe(1n);
    const asI32 = await file.read('input_ids', { as: 'i32' });
    expect(asI32.data[0]).toBe(1);
    expect([...asI32.data]).toEqual([...(ids.data as BigInt64Array)].map(Number));
    const labels = await file.read('labels', { as: 'i32' });
    expect([...labels.data.slice(0, 4)]).toEqual([-100, -100, -100, -100]);
    expect(labels.data[4]).toBe(asI32.data[4]);
  });

  it('opens the stories260K-hf folder as model weights', async () => {
    const weights = await openModelWeights(join(FIXTURES, 'stories260K-hf'));
    expect(weights.tensors.size).toBe(48);
    expect(weights.tensors.get('model.layers.0.mlp.down_proj.weight')?.shape).toEqual([64, 172]);
    const head = await weights.read('lm_head.weight', { as: 'f32' });
    const embed = await weights.read('model.embed_tokens.weight', { as: 'f32' });
    expect(head.shape).toEqual([512, 64]);
    expect(head.data).toEqual(embed.data);
  });
});

describe('sharded safetensors', () => {
  it('reads tensors through the index', async () => {
    const shardFolder = await mkdtemp(join(folder, 'sharded-'));
    await writeSafetensors(join(shardFolder, 'model-00001-of-00002.safetensors'), { a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    await writeSafetensors(join(shardFolder, 'model-00002-of-00002.safetensors'), { b: { dtype: 'I32', shape: [1], data: new Int32Array([7]) } });
    await writeFile(join(shardFolder, 'model.safetensors.index.json'), JSON.stringify({
      metadata: { total_size: 12 },
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' },
    }));

    const weights = await openModelWeights(shardFolder);
    expect(weights.metadata).toEqual({ total_size: '12' });
    expect([...weights.tensors.keys()]).toEqual(['a', 'b']);
    expect((await weights.read('a')).data).toEqual(new Float32Array([1, 2]));
    expect((await weights.read('b')).data).toEqual(new Int32Array([7]));
  });

  it('rejects a weight_map entry missing from its shard', async () => {
    const shardFolder = await mkdtemp(join(folder, 'sharded-bad-'));
    await writeSafetensors(join(shardFolder, 's1.safetensors'), { a: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } });
    const index = join(shardFolder, 'model.safetensors.index.json');
    await writeFile(index, JSON.stringify({ weight_map: { a: 's1.safetensors', c: 's1.safetensors' } }));
    await expect(openShardedSafetensors(index)).rejects.toThrow(/weight_map puts "c" in s1\.safetensors, but that shard has no such tensor/);
    await writeFile(index, JSON.stringify({ weight_map: { a: '../s1.safetensors' } }));
    await expect(openShardedSafetensors(index)).rejects.toThrow(FormatError);
    await writeFile(index, '{"weight_map": ');
    await expect(openShardedSafetensors(index)).rejects.toThrow(FormatError);
  });
});

describe('safetensors bad input', () => {
  const data = new Uint8Array(16);
  const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } };

  it('accepts the unmodified base case', async () => {
    const file = await openSafetensors(bytesSource(rawFile(good, data), 'ok.safetensors'));
    expect(file.tensors.get('b')).toEqual({ dtype: 'F32', shape: [2], begin: 8 + JSON.stringify(good).length + 8, end: 8 + JSON.stringify(good).length + 16 });
  });

  it('rejects a file shorter than the length prefix', async () => {
    await expectFormatError(new Uint8Array(5), /bad\.safetensors: 5 bytes is too short/);
  });

  it('rejects a header length past the end', async () => {
    const bytes = rawFile(good, data);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(bytes.length), true);
    await expectFormatError(bytes, /header length \d+ runs past the end of the file/);
  });

  it('rejects an absurd header length', async () => {
    const bytes = rawFile(good, data);
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 63n, true);
    await expectFormatError(bytes, /exceeds the limit/);
  });

  it('rejects a truncated file', async () => {
    const bytes = rawFile(good, data);
    await expectFormatError(bytes.subarray(0, bytes.length - 3), /tensor "b": data_offsets \[8, 16\] are outside the data section of 13 bytes/);
  });

  it('rejects overlapping tensors', async () => {
    const header = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    await expectFormatError(rawFile(header, data), /tensor "b" overlaps tensor "a"/);
  });

  it('rejects offsets out of range', async () => {
    await expectFormatError(rawFile({ a: { dtype: 'U8', shape: [8], data_offsets: [12, 20] } }, data), /tensor "a": data_offsets \[12, 20\] are outside/);
    await expectFormatError(rawFile({ a: { dtype: 'U8', shape: [0], data_offsets: [8, 4] } }, data), /outside/);
    await expectFormatError(rawFile({ a: { dtype: 'U8', shape: [1], data_offsets: [-1, 0] } }, data), /data_offsets must be two non-negative integers/);
  });

  it('rejects an unknown dtype', async () => {
    await expectFormatError(rawFile({ a: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, data), /tensor "a": unknown dtype "F128"/);
  });

  it('rejects a shape that does not match the byte length', async () => {
    await expectFormatError(rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, data), /tensor "a": shape \[3\] of F32 needs 12 bytes, but data_offsets \[0, 8\] hold 8/);
    await expectFormatError(rawFile({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, data), /needs/);
    await expectFormatError(rawFile({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, data), /shape must be a list/);
  });

  it('rejects a header that is not UTF-8 or not JSON', async () => {
    await expectFormatError(rawFile(null, data, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /header is not valid UTF-8/);
    await expectFormatError(rawFile(null, data, new TextEncoder().encode('{"a": ')), /header is not valid JSON/);
    await expectFormatError(rawFile([1, 2], data), /must be a JSON object/);
    await expectFormatError(rawFile({ __metadata__: { a: 1 } }, data), /"__metadata__.a" must be a string/);
    await expectFormatError(rawFile({ a: 'x' }, data), /tensor "a": expected an object/);
  });
});

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
