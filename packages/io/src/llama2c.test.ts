import { join, resolve } from 'node:path';
import { FormatError } from '@tematrainer/tensor';
import { describe, expect, it } from 'vitest';
import { openGguf } from './gguf.js';
import { readLlama2cCheckpoint, readLlama2cTokenizer } from './llama2c.js';
import { bytesSource } from './source.js';

const FIXTURES = resolve(import.meta.dirname, '../../../../shared/fixtures');
const STORIES = join(FIXTURES, 'stories260K');

// llama2.c name -> GGUF name of one layer's slice.
const PER_LAYER: Record<string, string> = {
  rms_att_weight: 'attn_norm', wq: 'attn_q', wk: 'attn_k', wv: 'attn_v', wo: 'attn_output',
  rms_ffn_weight: 'ffn_norm', w1: 'ffn_gate', w2: 'ffn_down', w3: 'ffn_up',
};

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Builds a tiny checkpoint whose float i is i / 1000, with the given header bytes and weight count. */
function syntheticCheckpoint(header: Uint8Array, floats: number): Uint8Array {
  const out = new Uint8Array(header.length + floats * 4);
  out.set(header);
  const view = new DataView(out.buffer);
  for (let i = 0; i < floats; i++) view.setFloat32(header.length + i * 4, i / 1000, true);
  return out;
}

// dim 4, hidden 6, 1 layer, 2 heads, 1 KV head, vocab 3, seq_len 2: head size 2, kv dim 2.
const SMALL = [4, 6, 1, 2, 1, 3, 2];
const SMALL_SIZES = { emb: 12, rmsAtt: 4, wq: 16, wk: 8, wv: 8, wo: 16, rmsFfn: 4, w1: 24, w2: 24, w3: 24, rmsFinal: 4, freqs: 4, wcls: 12 };

describe('llama2.c checkpoint stories260K', () => {
  it('reads the header and first floats', async () => {
    const { config, tensors } = await readLlama2cCheckpoint(join(STORIES, 'stories260K.bin'));
    expect(config).toEqual({ dim: 64, hidden_dim: 172, n_layers: 5, n_heads: 8, n_kv_heads: 4, vocab_size: 512, seq_len: 512, shared_classifier: true, version: 0 });
    const embedding = tensors.get('token_embedding_table')!;
    expect(embedding.shape).toEqual([512, 64]);
    expect(embedding.data[0]).toBeCloseTo(-0.29474878, 7);
    expect(embedding.data[1]).toBeCloseTo(0.56189561, 7);
    expect(embedding.data[2]).toBeCloseTo(0.17542253, 7);
    expect(tensors.has('freq_cis_real')).toBe(false);
    expect(tensors.has('wcls')).toBe(false);
    expect(tensors.get('wk')!.shape).toEqual([5, 32, 64]);
  });

  it('equals every tensor of the GGUF', async () => {
    const { tensors } = await readLlama2cCheckpoint(join(STORIES, 'stories260K.bin'));
    const gguf = await openGguf(join(STORIES, 'stories260K.gguf'));

    expect(tensors.get('token_embedding_table')!.data).toEqual((await gguf.read('token_embd.weight')).data);
    expect(tensors.get('token_embedding_table')!.data).toEqual((await gguf.read('output.weight')).data);
    expect(tensors.get('rms_final_weight')!.data).toEqual((await gguf.read('output_norm.weight')).data);
    for (const [name, ggufName] of Object.entries(PER_LAYER)) {
      const stacked = tensors.get(name)!;
      const layerSize = stacked.data.length / 5;
      for (let layer = 0; layer < 5; layer++) {
        const slice = await gguf.read(`blk.${layer}.${ggufName}.weight`);
        expect(slice.shape).toEqual(stacked.shape.slice(1));
        const layerData = stacked.data.subarray(layer * layerSize, (layer + 1) * layerSize);
        expect(sameBits(layerData, slice.data), `${name} layer ${layer}`).toBe(true);
      }
    }
  });

  it('reads the tokenizer', async () => {
    const tokenizer = await readLlama2cTokenizer(join(STORIES, 'tok512.bin'), 512);
    expect(tokenizer.maxTokenLength).toBe(7);
    expect(tokenizer.tokens.length).toBe(512);
    expect(tokenizer.tokens.slice(0, 4)).toEqual(['<unk>', '\n<s>\n', '\n</s>\n', '<0x00>']);
    expect(tokenizer.tokens[259]).toBe(' t');
    expect(tokenizer.scores[259]).toBe(-0);
    expect(tokenizer.tokens[260]).toBe('he');
    expect(tokenizer.scores[260]).toBe(-1);
  });

  it('rejects a tokenizer read with the wrong vocab size', async () => {
    await expect(readLlama2cTokenizer(join(STORIES, 'tok512.bin'), 511)).rejects.toThrow(/bytes follow the last of 511 tokens/);
    await expect(readLlama2cTokenizer(join(STORIES, 'tok512.bin'), 513)).rejects.toThrow(/file ends at token 512 of 513/);
  });
});

describe('llama2.c synthetic checkpoints', () => {
  it('reads the legacy layout with an unshared classifier', async () => {
    const header = new Uint8Array(28);
    SMALL.forEach((v, i) => new DataView(header.buffer).setInt32(i * 4, i === 5 ? -v : v, true));
    const floats = Object.values(SMALL_SIZES).reduce((a, b) => a + b, 0);
    const { config, tensors } = await readLlama2cCheckpoint(bytesSource(syntheticCheckpoint(header, floats), 'legacy.bin'));

    expect(config.shared_classifier).toBe(false);
    expect(config.vocab_size).toBe(3);
    // wcls follows the two RoPE tables at the end of the file.
    const wcls = tensors.get('wcls')!;
    expect(wcls.shape).toEqual([3, 4]);
    expect(wcls.data[0]).toBeCloseTo((floats - 12) / 1000, 6);
    expect(tensors.get('w2')!.shape).toEqual([1, 4, 6]);
  });

  it('reads the version 1 layout', async () => {
    const header = new Uint8Array(256);
    const view = new DataView(header.buffer);
    view.setUint32(0, 0x616b3432, true);
    view.setInt32(4, 1, true);
    SMALL.forEach((v, i) => view.setInt32(8 + i * 4, v, true));
    header[36] = 1;
    const { emb, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal } = SMALL_SIZES;
    const floats = emb + rmsAtt + wq + wk + wv + wo + rmsFfn + w1 + w2 + w3 + rmsFinal;
    const { config, tensors } = await readLlama2cCheckpoint(bytesSource(syntheticCheckpoint(header, floats), 'v1.bin'));

    expect(config).toEqual({ dim: 4, hidden_dim: 6, n_layers: 1, n_heads: 2, n_kv_heads: 1, vocab_size: 3, seq_len: 2, shared_classifier: true, version: 1 });
    // Version 1 puts the norms first: rms_att, rms_ffn, rms_final, then the embedding.
    expect(tensors.get('rms_att_weight')!.data[0]).toBe(0);
    expect(tensors.get('rms_ffn_weight')!.data[0]).toBeCloseTo(rmsAtt / 1000, 6);
    expect(tensors.get('rms_final_weight')!.data[0]).toBeCloseTo((rmsAtt + rmsFfn) / 1000, 6);
    expect(tensors.get('token_embedding_table')!.data[0]).toBeCloseTo((rmsAtt + rmsFfn + rmsFinal) / 1000, 6);
  });

  it('rejects a size that does not match the header', async () => {
    const header = new Uint8Array(28);
    SMALL.forEach((v, i) => new DataView(header.buffer).setInt32(i * 4, v, true));
    const bytes = syntheticCheckpoint(header, 100);
    const promise = readLlama2cCheckpoint(bytesSource(bytes, 'short.bin'));
    await expect(promise).rejects.toThrow(FormatError);
    await expect(promise).rejects.toThrow(/short\.bin: a llama2\.c checkpoint with this header .* has \d+ bytes, but the file has 428/);
  });

  it('rejects impossible header fields', async () => {
    const header = new Uint8Array(28);
    [4, 6, 1, 3, 1, 3, 2].forEach((v, i) => new DataView(header.buffer).setInt32(i * 4, v, true));
    await expect(readLlama2cCheckpoint(bytesSource(syntheticCheckpoint(header, 10), 'heads.bin'))).rejects.toThrow(/dim 4 must be a multiple of 2 \* n_heads \(3\)/);
    await expect(readLlama2cCheckpoint(bytesSource(new Uint8Array(10), 'tiny.bin'))).rejects.toThrow(FormatError);
  });
});
