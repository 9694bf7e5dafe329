import { ConfigError, type RopeLayout } from '@tematrainer/tensor';

export type Architecture = 'llama' | 'qwen2' | 'mistral' | 'gpt2';

/**
 * A decoder-only Llama-family configuration in this project's normalised form. Field names
 * follow transformers' config.json in camelCase; `ropeLayout` records where the weights came
 * from: Hugging Face checkpoints rotate halves, GGUF and llama2.c rotate adjacent pairs.
 */
export interface ModelConfig {
  architecture: Architecture;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number } | null;
  ropeLayout: RopeLayout;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Bias on q_proj, k_proj and v_proj (Qwen2). */
  attentionBias: boolean;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
}

type Json = Record<string, unknown>;

function num(json: Json, key: string, file: string, fallback?: number): number {
  const value = json[key];
  if (value === undefined || value === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(`${file}: missing field "${key}"`);
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ConfigError(`${file}: field "${key}" must be a number, found ${JSON.stringify(value)}`);
  }
  return value;
}

function positiveInt(json: Json, key: string, file: string, fallback?: number): number {
  const value = num(json, key, file, fallback);
  if (!Number.isInteger(value) || value <= 0) throw new ConfigError(`${file}: field "${key}" must be a positive integer, found ${value}`);
  return value;
}

const ARCHITECTURES: Record<string, Architecture> = {
  llama: 'llama',
  qwen2: 'qwen2',
  mistral: 'mistral',
};

/** Parse a Hugging Face config.json of the Llama family (Llama 2/3, Qwen2, Mistral, SmolLM, TinyLlama). */
export function parseHfConfig(json: Json, file = 'config.json'): ModelConfig {
  const modelType = String(json.model_type ?? '');
  const architecture = ARCHITECTURES[modelType];
  if (!architecture) {
    throw new ConfigError(
      `${file}: model_type "${modelType}" is not supported; supported: ${Object.keys(ARCHITECTURES).join(', ')}`,
    );
  }
  const hiddenSize = positiveInt(json, 'hidden_size', file);
  const numAttentionHeads = positiveInt(json, 'num_attention_heads', file);
  const numKeyValueHeads = positiveInt(json, 'num_key_value_heads', file, numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new ConfigError(`${file}: num_attention_heads ${numAttentionHeads} is not a multiple of num_key_value_heads ${numKeyValueHeads}`);
  }
  const headDim = json.head_dim == null ? hiddenSize / numAttentionHeads : positiveInt(json, 'head_dim', file);
  if (!Number.isInteger(headDim)) throw new ConfigError(`${file}: hidden_size ${hiddenSize} is not divisible by ${numAttentionHeads} heads`);

  // transformers 5 writes rope_parameters: {rope_theta, rope_type, ...}; older versions write
  // rope_theta and rope_scaling at the top level.
  const ropeParams = (json.rope_parameters ?? json.rope_scaling ?? null) as Json | null;
  const ropeTheta = num((json.rope_parameters as Json) ?? json, 'rope_theta', file, num(json, 'rope_theta', file, 10000));
  let ropeScaling: ModelConfig['ropeScaling'] = null;
  const ropeType = ropeParams ? String(ropeParams.rope_type ?? ropeParams.type ?? 'default') : 'default';
  if (ropeType === 'llama3') {
    ropeScaling = {
      factor: num(ropeParams!, 'factor', file),
      lowFreqFactor: num(ropeParams!, 'low_freq_factor', file),
      highFreqFactor: num(ropeParams!, 'high_freq_factor', file),
      originalMaxPositionEmbeddings: num(ropeParams!, 'original_max_position_embeddings', file),
    };
  } else if (ropeType !== 'default') {
    throw new ConfigError(`${file}: rope_type "${ropeType}" is not supported (supported: default, llama3)`);
  }

  return {
    architecture,
    hiddenSize,
    intermediateSize: positiveInt(json, 'intermediate_size', file),
    numHiddenLayers: positiveInt(json, 'num_hidden_layers', file),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    vocabSize: positiveInt(json, 'vocab_size', file),
    rmsNormEps: num(json, 'rms_norm_eps', file, 1e-6),
    ropeTheta,
    ropeScaling,
    ropeLayout: 'halves',
    maxPositionEmbeddings: positiveInt(json, 'max_position_embeddings', file, 2048),
    tieWordEmbeddings: json.tie_word_embeddings === true,
    attentionBias: json.attention_bias === true || architecture === 'qwen2',
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : null,
    eosTokenId: (json.eos_token_id as number | number[] | undefined) ?? null,
  };
}

const HF_CLASSES: Record<Architecture, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  mistral: 'MistralForCausalLM',
  gpt2: 'GPT2LMHeadModel',
};

/** Build the config.json that transformers would write for this config (used when saving merged models). */
export function toHfConfig(config: ModelConfig): Json {
  const out: Json = {
    architectures: [HF_CLASSES[config.architecture]],
    model_type: config.architecture,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numHiddenLayers,
    num_attention_heads: config.numAttentionHeads,
    num_key_value_heads: config.numKeyValueHeads,
    head_dim: config.headDim,
    vocab_size: config.vocabSize,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    max_position_embeddings: config.maxPositionEmbeddings,
    tie_word_embeddings: config.tieWordEmbeddings,
    attention_bias: config.attentionBias,
    hidden_act: 'silu',
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    torch_dtype: 'float32',
  };
  if (config.ropeScaling) {
    out.rope_scaling = {
      rope_type: 'llama3',
      factor: config.ropeScaling.factor,
      low_freq_factor: config.ropeScaling.lowFreqFactor,
      high_freq_factor: config.ropeScaling.highFreqFactor,
      original_max_position_embeddings: config.ropeScaling.originalMaxPositionEmbeddings,
    };
  }
  return out;
}
