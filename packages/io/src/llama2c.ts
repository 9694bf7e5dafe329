import { FormatError } from '@tematrainer/tensor';
import { bytesToArray } from './dtypes.js';
import { type ByteSource, toSource } from './source.js';

/** The seven header fields of a llama2.c checkpoint, plus what they imply. */
export interface Llama2cConfig {
  dim: number;
  hidden_dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  vocab_size: number;
  seq_len: number;
  /** True when the output classifier reuses token_embedding_table (no wcls in the file). */
  shared_classifier: boolean;
  /** 0 for the legacy header-less layout, 1 for the "ak42" fp32 layout. */
  version: number;
}

export interface Llama2cCheckpoint {
  config: Llama2cConfig;
  /** Weights named as llama2.c's TransformerWeights fields. Per-layer weights are stacked on a leading [n_layers] axis. */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

export interface Llama2cTokenizer {
  maxTokenLength: number;
  tokens: string[];
  scores: number[];
}

const VERSIONED_MAGIC = 0x616b3432; // "ak42" read as a little-endian uint32
const VERSIONED_HEADER_BYTES = 256;
const LEGACY_HEADER_BYTES = 28;

type Layout = [name: string, shape: number[]][];

function weightShapes(c: Llama2cConfig): Record<string, number[]> {
  const headSize = c.dim / c.n_heads;
  const kvDim = headSize * c.n_kv_heads;
  const L = c.n_layers;
  return {
    token_embedding_table: [c.vocab_size, c.dim],
    rms_att_weight: [L, c.dim],
    wq: [L, c.dim, c.dim],
    wk: [L, kvDim, c.dim],
    wv: [L, kvDim, c.dim],
    wo: [L, c.dim, c.dim],
    rms_ffn_weight: [L, c.dim],
    w1: [L, c.hidden_dim, c.dim],
    w2: [L, c.dim, c.hidden_dim],
    w3: [L, c.hidden_dim, c.dim],
    rms_final_weight: [c.dim],
    freq_cis_real: [c.seq_len, headSize / 2],
    freq_cis_imag: [c.seq_len, headSize / 2],
    wcls: [c.vocab_size, c.dim],
  };
}

/** Tensors in file order. The legacy layout stores RoPE tables, which are read past and not returned. */
function fileLayout(c: Llama2cConfig): Layout {
  const s = weightShapes(c);
  const names =
    c.version === 0
      ? ['token_embedding_table', 'rms_att_weight', 'wq', 'wk', 'wv', 'wo', 'rms_ffn_weight', 'w1', 'w2', 'w3', 'rms_final_weight', 'freq_cis_real', 'freq_cis_imag']
      : ['rms_att_weight', 'rms_ffn_weight', 'rms_final_weight', 'token_embedding_table', 'wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'];
  if (!c.shared_classifier) names.push('wcls');
  return names.map((name) => [name, s[name]!]);
}

const SKIPPED = new Set(['freq_cis_real', 'freq_cis_imag']);

function layoutBytes(layout: Layout): number {
  return layout.reduce((sum, [, shape]) => sum + shape.reduce((a, b) => a * b, 1) * 4, 0);
}

function checkConfig(file: string, c: Llama2cConfig): void {
  const fields = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const;
  for (const field of fields) {
    if (!(c[field] > 0)) throw new FormatError(`${file}: llama2.c header field ${field} is ${c[field]}, expected a positive integer`);
  }
  if (c.dim % c.n_heads !== 0 || (c.dim / c.n_heads) % 2 !== 0) {
    throw new FormatError(`${file}: dim ${c.dim} must be a multiple of 2 * n_heads (${c.n_heads}) for an even head size`);
  }
  if (c.n_heads % c.n_kv_heads !== 0) {
    throw new FormatError(`${file}: n_heads ${c.n_heads} is not a multiple of n_kv_heads ${c.n_kv_heads}`);
  }
}

/** Parses the header and returns the config and data offset, or raises FormatError. */
export async function readLlama2cHeader(source: ByteSource): Promise<{ config: Llama2cConfig; dataOffset: number }> {
  const file = source.name;
  if (source.size < LEGACY_HEADER_BYTES) throw new FormatError(`${file}: ${source.size} bytes is too short for a llama2.c checkpoint header (28 bytes)`);
  const head = await source.read(0, Math.min(source.size, VERSIONED_HEADER_BYTES));
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);

  let config: Llama2cConfig;
  let dataOffset: number;
  if (view.getUint32(0, true) === VERSIONED_MAGIC) {
    const version = view.getInt32(4, true);
    if (version !== 1) {
      throw new FormatError(`${file}: llama2.c checkpoint version ${version} is not supported (only version 1, fp32, and the legacy layout)`);
    }
    if (source.size < VERSIONED_HEADER_BYTES) throw new FormatError(`${file}: ${source.size} bytes is too short for a version 1 header (256 bytes)`);
    const field = (i: number) => view.getInt32(8 + 4 * i, true);
    config = {
      dim: field(0), hidden_dim: field(1), n_layers: field(2), n_heads: field(3), n_kv_heads: field(4),
      vocab_size: field(5), seq_len: field(6), shared_classifier: view.getUint8(36) === 1, version: 1,
    };
    dataOffset = VERSIONED_HEADER_BYTES;
  } else {
    const field = (i: number) => view.getInt32(4 * i, true);
    const vocab = field(5);
    // The legacy layout marks an unshared classifier with a negative vocab_size.
    config = {
      dim: field(0), hidden_dim: field(1), n_layers: field(2), n_heads: field(3), n_kv_heads: field(4),
      vocab_size: Math.abs(vocab), seq_len: field(6), shared_classifier: vocab > 0, version: 0,
    };
    dataOffset = LEGACY_HEADER_BYTES;
  }
  checkConfig(file, config);

  const expected = dataOffset + layoutBytes(fileLayout(config));
  if (expected !== source.size) {
    throw new FormatError(
      `${file}: a llama2.c checkpoint with this header (${JSON.stringify(config)}) has ${expected} bytes, but the file has ${source.size} — is it truncated or another format?`,
    );
  }
  return { config, dataOffset };
}

/**
 * Reads a llama2.c checkpoint: the legacy layout (7 int32 header fields, then fp32 weights and
 * RoPE tables) or version 1 (256-byte "ak42" header, fp32 weights). The file size must equal
 * what the header implies.
 */
export async function readLlama2cCheckpoint(input: string | ByteSource): Promise<Llama2cCheckpoint> {
  const source = await toSource(input);
  const { config, dataOffset } = await readLlama2cHeader(source);

  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let offset = dataOffset;
  for (const [name, shape] of fileLayout(config)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    if (!SKIPPED.has(name)) {
      tensors.set(name, { shape, data: bytesToArray(await source.read(offset, bytes), 'F32') as Float32Array });
    }
    offset += bytes;
  }
  return { config, tensors };
}

/**
 * Reads a llama2.c tokenizer (tok*.bin): uint32 max_token_length, then per token an f32 score,
 * an int32 byte length and the UTF-8 bytes. The file must end right after `vocabSize` tokens.
 */
export async function readLlama2cTokenizer(input: string | ByteSource, vocabSize: number): Promise<Llama2cTokenizer> {
  const source = await toSource(input);
  const file = source.name;
  const bytes = await source.read(0, source.size);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder('utf-8');

  if (bytes.length < 4) throw new FormatError(`${file}: ${bytes.length} bytes is too short for a llama2.c tokenizer`);
  const maxTokenLength = view.getUint32(0, true);
  const tokens: string[] = [];
  const scores: number[] = [];
  let pos = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (pos + 8 > bytes.length) throw new FormatError(`${file}: file ends at token ${i} of ${vocabSize} — is vocabSize right?`);
    const score = view.getFloat32(pos, true);
    const length = view.getInt32(pos + 4, true);
    pos += 8;
    if (length < 0 || length > maxTokenLength || pos + length > bytes.length) {
      throw new FormatError(`${file}: token ${i} has byte length ${length}, expected 0..${maxTokenLength} within the file`);
    }
    tokens.push(decoder.decode(bytes.subarray(pos, pos + length)));
    scores.push(score);
    pos += length;
  }
  if (pos !== bytes.length) {
    throw new FormatError(`${file}: ${bytes.length - pos} bytes follow the last of ${vocabSize} tokens — is vocabSize right?`);
  }
  return { maxTokenLength, tokens, scores };
}
