import { FormatError } from '@tematrainer/tensor';
import type { GgufFile, GgufValue } from './gguf.js';

/** A Llama-family config in Hugging Face `config.json` names, read from GGUF metadata. */
export interface GgufLlamaConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  max_position_embeddings: number;
  vocab_size: number;
  head_dim: number;
}

/** The vocabulary GGUF files embed, enough to rebuild a SentencePiece-style tokenizer. */
export interface GgufTokenizerData {
  /** `tokenizer.ggml.model`, for example "llama" or "gpt2". */
  model: string;
  tokens: string[];
  /** One score per token, or zeros when the file has none. */
  scores: number[];
  /** One llama.cpp token type per token (1 normal, 2 unknown, 3 control, 6 byte), or ones when absent. */
  tokenTypes: number[];
  bosId: number | undefined;
  eosId: number | undefined;
  unkId: number | undefined;
  addBos: boolean;
  addSpacePrefix: boolean;
}

function describe(value: GgufValue | undefined): string {
  return value === undefined ? 'missing' : JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

function numberKey(gguf: GgufFile, key: string, fallback?: number): number {
  const value = gguf.metadata.get(key);
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new FormatError(`${gguf.source.name}: metadata "${key}" must be a finite number, found ${describe(value)}`);
  }
  return value;
}

/** Reads a size or count, which must be a positive integer. */
function sizeKey(gguf: GgufFile, key: string, fallback?: number): number {
  const value = numberKey(gguf, key, fallback);
  if (!Number.isSafeInteger(value) || value <= 0) throw new FormatError(`${gguf.source.name}: metadata "${key}" must be a positive integer, found ${value}`);
  return value;
}

function optionalNumber(gguf: GgufFile, key: string): number | undefined {
  return gguf.metadata.has(key) ? numberKey(gguf, key) : undefined;
}

function optionalBool(gguf: GgufFile, key: string, fallback: boolean): boolean {
  const value = gguf.metadata.get(key);
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new FormatError(`${gguf.source.name}: metadata "${key}" must be a bool, found ${describe(value)}`);
  return value;
}

function arrayKey(gguf: GgufFile, key: string): GgufValue[] | undefined {
  const value = gguf.metadata.get(key);
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw new FormatError(`${gguf.source.name}: metadata "${key}" must be an array, found ${describe(value)}`);
  return value;
}

/**
 * Maps the `<arch>.*` keys of a Llama-family GGUF (`general.architecture`, default "llama") to
 * Hugging Face config names. `vocab_size` comes from `<arch>.vocab_size`, else the token list,
 * else the embedding's row count. `head_dim` comes from `<arch>.attention.key_length`, else
 * hidden_size / num_attention_heads.
 */
export function ggufLlamaConfig(gguf: GgufFile): GgufLlamaConfig {
  const archValue = gguf.metadata.get('general.architecture') ?? 'llama';
  if (typeof archValue !== 'string') throw new FormatError(`${gguf.source.name}: general.architecture must be a string, found ${describe(archValue)}`);
  const arch = archValue;

  const hiddenSize = sizeKey(gguf, `${arch}.embedding_length`);
  const heads = sizeKey(gguf, `${arch}.attention.head_count`);
  const vocabSize =
    (gguf.metadata.has(`${arch}.vocab_size`) ? sizeKey(gguf, `${arch}.vocab_size`) : undefined) ??
    arrayKey(gguf, 'tokenizer.ggml.tokens')?.length ??
    gguf.tensors.get('token_embd.weight')?.shape[0];
  if (vocabSize === undefined) {
    throw new FormatError(`${gguf.source.name}: cannot find the vocabulary size (no ${arch}.vocab_size, tokenizer.ggml.tokens or token_embd.weight)`);
  }

  return {
    hidden_size: hiddenSize,
    intermediate_size: sizeKey(gguf, `${arch}.feed_forward_length`),
    num_hidden_layers: sizeKey(gguf, `${arch}.block_count`),
    num_attention_heads: heads,
    num_key_value_heads: sizeKey(gguf, `${arch}.attention.head_count_kv`, heads),
    rms_norm_eps: numberKey(gguf, `${arch}.attention.layer_norm_rms_epsilon`),
    rope_theta: numberKey(gguf, `${arch}.rope.freq_base`, 10000),
    max_position_embeddings: sizeKey(gguf, `${arch}.context_length`),
    vocab_size: vocabSize,
    head_dim: gguf.metadata.has(`${arch}.attention.key_length`) ? sizeKey(gguf, `${arch}.attention.key_length`) : hiddenSize / heads,
  };
}

/** Reads the `tokenizer.ggml.*` vocabulary, scores, token types and special token ids. */
export function ggufTokenizerData(gguf: GgufFile): GgufTokenizerData {
  const file = gguf.source.name;
  const modelValue = gguf.metadata.get('tokenizer.ggml.model');
  if (typeof modelValue !== 'string') throw new FormatError(`${file}: metadata "tokenizer.ggml.model" must be a string, found ${describe(modelValue)}`);

  const tokens = arrayKey(gguf, 'tokenizer.ggml.tokens');
  if (!tokens || !tokens.every((t) => typeof t === 'string')) {
    throw new FormatError(`${file}: metadata "tokenizer.ggml.tokens" must be an array of strings`);
  }
  const count = tokens.length;

  const numbers = (key: string, fallback: number): number[] => {
    const values = arrayKey(gguf, key);
    if (!values) return new Array<number>(count).fill(fallback);
    if (values.length !== count || !values.every((v) => typeof v === 'number')) {
      throw new FormatError(`${file}: metadata "${key}" must hold ${count} numbers, one per token, found ${values.length} values`);
    }
    return values as number[];
  };

  return {
    model: modelValue,
    tokens: tokens as string[],
    scores: numbers('tokenizer.ggml.scores', 0),
    tokenTypes: numbers('tokenizer.ggml.token_type', 1),
    bosId: optionalNumber(gguf, 'tokenizer.ggml.bos_token_id'),
    eosId: optionalNumber(gguf, 'tokenizer.ggml.eos_token_id'),
    unkId: optionalNumber(gguf, 'tokenizer.ggml.unknown_token_id'),
    // llama.cpp's defaults for the SentencePiece ("llama") vocabulary: add BOS and a leading space.
    addBos: optionalBool(gguf, 'tokenizer.ggml.add_bos_token', modelValue === 'llama'),
    addSpacePrefix: optionalBool(gguf, 'tokenizer.ggml.add_space_prefix', modelValue === 'llama'),
  };
}
