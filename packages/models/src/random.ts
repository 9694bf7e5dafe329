import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeSafetensors, type TensorToWrite } from '@tematrainer/io';
import { ConfigError, fromData, seededRandom, untrack, type Tensor } from '@tematrainer/tensor';
import type { CausalLM } from './causal-lm.js';
import { toHfConfig, type ModelConfig } from './config.js';
import { expectedGpt2Weights, Gpt2Model, isConv1dWeight, toGpt2HfConfig, transpose2d, type Gpt2Config } from './gpt2.js';
import { expectedWeights, LlamaModel } from './llama.js';

/**
 * SmolLM2-135M's shape (HuggingFaceTB/SmolLM2-135M config.json): a Llama with 30 layers,
 * hidden 576, 9 query and 3 KV heads, tied embeddings. Used with random weights for benchmarks.
 */
export const SMOLLM2_135M_CONFIG: ModelConfig = {
  architecture: 'llama',
  hiddenSize: 576,
  intermediateSize: 1536,
  numHiddenLayers: 30,
  numAttentionHeads: 9,
  numKeyValueHeads: 3,
  headDim: 64,
  vocabSize: 49152,
  rmsNormEps: 1e-5,
  ropeTheta: 100000,
  ropeScaling: null,
  ropeLayout: 'halves',
  maxPositionEmbeddings: 8192,
  tieWordEmbeddings: true,
  attentionBias: false,
  bosTokenId: 0,
  eosTokenId: 0,
};

function isGpt2(config: ModelConfig): config is Gpt2Config {
  return config.architecture === 'gpt2';
}

/**
 * Random values for one weight: norm weights near 1, biases and matrices uniform with standard
 * deviation 0.02 (GPT-2's initializer_range), so activations stay in a realistic range.
 */
function randomValues(name: string, size: number, random: () => number): Float32Array {
  const bound = 0.02 * Math.sqrt(3);
  const out = new Float32Array(size);
  const isNormWeight = /(norm|ln_\w+)\.weight$/.test(name);
  for (let i = 0; i < size; i++) out[i] = (isNormWeight ? 1 : 0) + (random() * 2 - 1) * bound;
  return out;
}

/**
 * Build a model of the given shape with seeded random weights, for tests and benchmarks that need a
 * model without its checkpoint. The same config and seed give the same weights.
 */
export function randomModel(config: ModelConfig, seed = 0): CausalLM {
  const random = seededRandom(seed);
  const params = new Map<string, Tensor>();
  const shapes = isGpt2(config) ? expectedGpt2Weights(config) : expectedWeights(config);
  for (const [name, shape] of shapes) {
    // The model stores GPT-2's Conv1D weights as [out, in]; the file shape is [in, out].
    const held = isGpt2(config) && isConv1dWeight(name) ? [shape[1], shape[0]] : shape;
    const size = held.reduce((a, b) => a * b, 1);
    params.set(name, untrack(fromData(randomValues(name, size, random), held)));
  }
  return isGpt2(config) ? new Gpt2Model(config, params) : new LlamaModel(config, params);
}

/**
 * Write a model as a Hugging Face folder: config.json and model.safetensors (F32, Hugging Face
 * names, GPT-2's Conv1D weights back in their [in, out] layout). No tokenizer is written.
 */
export async function saveModel(model: CausalLM, dir: string): Promise<void> {
  const config = model.config;
  if (config.ropeLayout !== 'halves') {
    throw new ConfigError(
      `saveModel: this model's Q/K rows use the "${config.ropeLayout}" RoPE layout (GGUF or llama2.c); Hugging Face files expect "halves"`,
    );
  }
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of model.params) {
    let data = (await t.data()) as Float32Array;
    let shape = [...t.shape];
    if (isGpt2(config) && isConv1dWeight(name)) {
      data = transpose2d(data, shape[0], shape[1]);
      shape = [shape[1], shape[0]];
    }
    tensors[name] = { dtype: 'F32', shape, data };
  }
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const json = isGpt2(config) ? toGpt2HfConfig(config) : toHfConfig(config);
  await writeFileAtomic(join(dir, 'config.json'), new TextEncoder().encode(`${JSON.stringify(json, null, 2)}\n`));
}
