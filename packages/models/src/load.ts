import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ggufLlamaConfig, ggufTokenizerData, readLlama2cTokenizer } from '@tematrainer/io';
import { ConfigError, FormatError } from '@tematrainer/tensor';
import { storeLinearWeightsAsF16 } from './precision.js';
import { parseHfConfig, type ModelConfig } from './config.js';
import type { CausalLM } from './causal-lm.js';
import { Gpt2Model, parseGpt2Config } from './gpt2.js';
import { LlamaModel } from './llama.js';
import { loadHfTokenizer, SentencePieceBpeTokenizer, type Tokenizer } from './tokenizer/index.js';
import { ggufFileSource, hfFolderSource, llama2cFileSource } from './weights.js';

export type ModelFormat = 'hf' | 'gguf' | 'llama2c';

export interface LoadedModel {
  model: CausalLM;
  tokenizer: Tokenizer;
  config: ModelConfig;
  format: ModelFormat;
  /** The path the model was loaded from. */
  path: string;
}

export interface LoadOptions {
  /** llama2.c only: the tok*.bin tokenizer; by default tok<vocab_size>.bin next to the checkpoint. */
  tokenizerPath?: string;
  /** 'f16' stores the linear layers' weights in half precision where the adapter has shader-f16. */
  dtype?: 'f32' | 'f16';
}

/**
 * Load a model and its tokenizer from a Hugging Face folder (config.json + safetensors +
 * tokenizer.json), a GGUF file, or a llama2.c checkpoint (.bin with its tok*.bin).
 */
export async function loadModel(path: string, options: LoadOptions = {}): Promise<LoadedModel> {
  if (!existsSync(path)) throw new ConfigError(`model path not found: ${path}`);
  let loaded: LoadedModel;
  if (statSync(path).isDirectory()) loaded = await loadHf(path);
  else if (path.endsWith('.gguf')) loaded = await loadGgufModel(path);
  else if (path.endsWith('.bin')) loaded = await loadLlama2c(path, options.tokenizerPath);
  else throw new ConfigError(`${path}: unknown model format; expected a Hugging Face folder, a .gguf file or a llama2.c .bin file`);
  if (options.dtype === 'f16') storeLinearWeightsAsF16(loaded.model);
  return loaded;
}

async function loadHf(folder: string): Promise<LoadedModel> {
  const file = join(folder, 'config.json');
  if (!existsSync(file)) throw new FormatError(`${folder}: no config.json, so this is not a Hugging Face model folder`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new FormatError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (json.model_type === 'gpt2') {
    const config = parseGpt2Config(json, file);
    const model = await Gpt2Model.load(config, await hfFolderSource(folder));
    try {
      return { model, tokenizer: await loadHfTokenizer(folder), config, format: 'hf', path: folder };
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  const config = parseHfConfig(json, file);
  if (config.tieWordEmbeddings === false && !json.tie_word_embeddings) {
    // Some checkpoints say nothing and ship no lm_head: they are tied.
  }
  const source = await hfFolderSource(folder);
  if (!config.tieWordEmbeddings && !source.shape('lm_head.weight')) config.tieWordEmbeddings = true;
  const model = await LlamaModel.load(config, source);
  try {
    return { model, tokenizer: await loadHfTokenizer(folder), config, format: 'hf', path: folder };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

async function loadGgufModel(path: string): Promise<LoadedModel> {
  const { source, gguf } = await ggufFileSource(path);
  const arch = String(gguf.metadata.get('general.architecture') ?? 'llama');
  if (arch !== 'llama') throw new ConfigError(`${path}: GGUF architecture "${arch}" is not supported (supported: llama)`);
  const g = ggufLlamaConfig(gguf);
  const tok = ggufTokenizerData(gguf);
  const config: ModelConfig = {
    architecture: 'llama',
    hiddenSize: g.hidden_size,
    intermediateSize: g.intermediate_size,
    numHiddenLayers: g.num_hidden_layers,
    numAttentionHeads: g.num_attention_heads,
    numKeyValueHeads: g.num_key_value_heads,
    headDim: g.head_dim,
    vocabSize: g.vocab_size,
    rmsNormEps: g.rms_norm_eps,
    ropeTheta: g.rope_theta,
    ropeScaling: null,
    // llama.cpp keeps the Q/K rows of llama models in the interleaved-pairs layout.
    ropeLayout: 'pairs',
    maxPositionEmbeddings: g.max_position_embeddings,
    tieWordEmbeddings: !source.shape('lm_head.weight'),
    attentionBias: false,
    bosTokenId: tok.bosId ?? null,
    eosTokenId: tok.eosId ?? null,
  };
  const model = await LlamaModel.load(config, source);
  const tokenizer = SentencePieceBpeTokenizer.fromGguf(tok);
  return { model, tokenizer, config, format: 'gguf', path };
}

async function loadLlama2c(path: string, tokenizerPath?: string): Promise<LoadedModel> {
  const { source, ckpt } = await llama2cFileSource(path);
  const c = ckpt.config;
  const tokPath = tokenizerPath ?? join(dirname(path), `tok${c.vocab_size}.bin`);
  if (!existsSync(tokPath)) {
    throw new FormatError(
      `${path}: llama2.c checkpoints need their tokenizer; ${basename(tokPath)} was not found next to it (pass the tok*.bin path)`,
    );
  }
  const tok = await readLlama2cTokenizer(tokPath, c.vocab_size);
  const config: ModelConfig = {
    architecture: 'llama',
    hiddenSize: c.dim,
    intermediateSize: c.hidden_dim,
    numHiddenLayers: c.n_layers,
    numAttentionHeads: c.n_heads,
    numKeyValueHeads: c.n_kv_heads,
    headDim: c.dim / c.n_heads,
    vocabSize: c.vocab_size,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    ropeLayout: 'pairs',
    maxPositionEmbeddings: c.seq_len,
    tieWordEmbeddings: c.shared_classifier,
    attentionBias: false,
    bosTokenId: 1,
    eosTokenId: 2,
  };
  const model = await LlamaModel.load(config, source);
  const tokenizer = SentencePieceBpeTokenizer.fromLlama2c(tok);
  return { model, tokenizer, config, format: 'llama2c', path };
}
