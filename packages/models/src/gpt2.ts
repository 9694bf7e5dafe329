import {
  add,
  attention,
  ConfigError,
  copyBlock,
  embedding,
  formatShape,
  FormatError,
  fromData,
  gelu,
  layerNorm,
  ShapeError,
  type Tensor,
} from '@tematrainer/tensor';
import type { ModelConfig } from './config.js';
import { DenseLinear, type LinearLayer } from './linear.js';
import type { ForwardOptions } from './llama.js';
import { lastPositions, parameterBytesOf } from './causal-lm.js';
import { loadCheckedWeights, type WeightSource } from './weights.js';

/** GPT-2's configuration: the shared ModelConfig fields plus LayerNorm's epsilon. */
export interface Gpt2Config extends ModelConfig {
  architecture: 'gpt2';
  /** layer_norm_epsilon of config.json (1e-5 in every published GPT-2). */
  layerNormEps: number;
}

type Json = Record<string, unknown>;

function field(json: Json, key: string, file: string, fallback?: number): number {
  const value = json[key] ?? fallback;
  if (value === undefined || value === null) throw new ConfigError(`${file}: missing field "${key}"`);
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(`${file}: field "${key}" must be a positive number, found ${JSON.stringify(value)}`);
  }
  return value;
}

/** Parse a transformers GPT2Config (config.json with model_type "gpt2"). */
export function parseGpt2Config(json: Json, file = 'config.json'): Gpt2Config {
  const hiddenSize = field(json, 'n_embd', file);
  const heads = field(json, 'n_head', file);
  if (hiddenSize % heads !== 0) throw new ConfigError(`${file}: n_embd ${hiddenSize} is not divisible by n_head ${heads}`);
  const activation = json.activation_function ?? 'gelu_new';
  if (activation !== 'gelu_new' && activation !== 'gelu_pytorch_tanh') {
    throw new ConfigError(`${file}: activation_function "${String(activation)}" is not supported (supported: gelu_new, gelu_pytorch_tanh)`);
  }
  return {
    architecture: 'gpt2',
    hiddenSize,
    // n_inner is null in the published configs, meaning 4 * n_embd.
    intermediateSize: field(json, 'n_inner', file, 4 * hiddenSize),
    numHiddenLayers: field(json, 'n_layer', file),
    numAttentionHeads: heads,
    numKeyValueHeads: heads,
    headDim: hiddenSize / heads,
    vocabSize: field(json, 'vocab_size', file),
    layerNormEps: field(json, 'layer_norm_epsilon', file, 1e-5),
    // RMSNorm and RoPE fields of ModelConfig do not apply to GPT-2.
    rmsNormEps: 0,
    ropeTheta: 0,
    ropeScaling: null,
    ropeLayout: 'halves',
    maxPositionEmbeddings: field(json, 'n_positions', file, 1024),
    tieWordEmbeddings: json.tie_word_embeddings !== false,
    attentionBias: true,
    bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : null,
    eosTokenId: (json.eos_token_id as number | number[] | undefined) ?? null,
  };
}

/** Build the config.json that transformers writes for a GPT2LMHeadModel. */
export function toGpt2HfConfig(config: Gpt2Config): Json {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: config.hiddenSize,
    n_inner: config.intermediateSize,
    n_layer: config.numHiddenLayers,
    n_head: config.numAttentionHeads,
    n_positions: config.maxPositionEmbeddings,
    n_ctx: config.maxPositionEmbeddings,
    vocab_size: config.vocabSize,
    layer_norm_epsilon: config.layerNormEps,
    activation_function: 'gelu_new',
    tie_word_embeddings: config.tieWordEmbeddings,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    torch_dtype: 'float32',
  };
}

/** Linear layers of one GPT-2 block, stored as Conv1D ([in, out]) in Hugging Face files. */
export const GPT2_LINEARS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;

/**
 * Every weight of a GPT-2 checkpoint with its shape in the file. Conv1D weights are [in, out]
 * there, and the model stores them transposed to [out, in], as nn.Linear does.
 */
export function expectedGpt2Weights(c: Gpt2Config): Map<string, number[]> {
  const C = c.hiddenSize;
  const out = new Map<string, number[]>();
  out.set('transformer.wte.weight', [c.vocabSize, C]);
  out.set('transformer.wpe.weight', [c.maxPositionEmbeddings, C]);
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `transformer.h.${l}`;
    out.set(`${p}.ln_1.weight`, [C]);
    out.set(`${p}.ln_1.bias`, [C]);
    out.set(`${p}.attn.c_attn.weight`, [C, 3 * C]);
    out.set(`${p}.attn.c_attn.bias`, [3 * C]);
    out.set(`${p}.attn.c_proj.weight`, [C, C]);
    out.set(`${p}.attn.c_proj.bias`, [C]);
    out.set(`${p}.ln_2.weight`, [C]);
    out.set(`${p}.ln_2.bias`, [C]);
    out.set(`${p}.mlp.c_fc.weight`, [C, c.intermediateSize]);
    out.set(`${p}.mlp.c_fc.bias`, [c.intermediateSize]);
    out.set(`${p}.mlp.c_proj.weight`, [c.intermediateSize, C]);
    out.set(`${p}.mlp.c_proj.bias`, [C]);
  }
  out.set('transformer.ln_f.weight', [C]);
  out.set('transformer.ln_f.bias', [C]);
  if (!c.tieWordEmbeddings) out.set('lm_head.weight', [c.vocabSize, C]);
  return out;
}

/** True for the Conv1D weights that are stored [in, out]. */
export function isConv1dWeight(name: string): boolean {
  return /\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/.test(name);
}

/** Transpose a row-major [rows, cols] matrix. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/**
 * GPT-2 as transformers' GPT2LMHeadModel computes it: learned position embeddings, pre-LayerNorm
 * blocks, fused causal attention over the c_attn output, tanh GELU, and an lm_head tied to wte.
 * Parameters keep their Hugging Face names; Conv1D weights are held transposed to [out, in] so
 * that every layer is a plain DenseLinear that LoRA can wrap.
 */
export class Gpt2Model {
  readonly params = new Map<string, Tensor>();
  readonly linears = new Map<string, LinearLayer>();

  constructor(
    readonly config: Gpt2Config,
    params: Map<string, Tensor>,
  ) {
    for (const [name, fileShape] of expectedGpt2Weights(config)) {
      const shape = isConv1dWeight(name) ? [fileShape[1], fileShape[0]] : fileShape;
      const t = params.get(name);
      if (!t) throw new FormatError(`model weights: tensor "${name}" is missing`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new FormatError(`model weights: tensor "${name}" has shape ${formatShape(t.shape)}, the config expects ${formatShape(shape)}`);
      }
      t.name = name;
      this.params.set(name, t);
    }
    for (let l = 0; l < config.numHiddenLayers; l++) {
      for (const suffix of GPT2_LINEARS) {
        const name = `transformer.h.${l}.${suffix}`;
        this.linears.set(name, new DenseLinear(name, this.params.get(`${name}.weight`)!, this.params.get(`${name}.bias`)!));
      }
    }
    const head = this.params.get(config.tieWordEmbeddings ? 'transformer.wte.weight' : 'lm_head.weight')!;
    this.linears.set('lm_head', new DenseLinear('lm_head', head));
  }

  /**
   * Load and check every weight from a checkpoint. Names may carry the `transformer.` prefix
   * (GPT2LMHeadModel.save_pretrained) or not (the original gpt2 repository's files).
   */
  static async load(config: Gpt2Config, source: WeightSource): Promise<Gpt2Model> {
    const params = await loadCheckedWeights(source, expectedGpt2Weights(config), {
      alias: (name) => name.replace(/^transformer\./, ''),
      examples: (n) => n.includes('h.0.') || !n.includes('h.'),
      // Conv1D stores [in, out]; the layers want nn.Linear's [out, in].
      upload: (name, data, shape) =>
        isConv1dWeight(name) ? fromData(transpose2d(data, shape[0], shape[1]), [shape[1], shape[0]]) : fromData(data, shape),
    });
    return new Gpt2Model(config, params);
  }

  linear(name: string, x: Tensor): Tensor {
    const layer = this.linears.get(name);
    if (!layer) throw new ShapeError(`no linear layer "${name}"`);
    return layer.forward(x);
  }

  /** Logits [batch, seq, vocab] (or [batch, 1, vocab] with lastOnly) for token ids [batch, seq] (i32). */
  forward(ids: Tensor, options: ForwardOptions = {}): Tensor {
    const c = this.config;
    if (ids.dtype !== 'i32' || ids.shape.length !== 2) throw new ShapeError(`forward: ids must be i32 [batch, seq], got ${ids.describe()}`);
    const [batch, seq] = ids.shape;
    const { cache } = options;
    const start = cache?.length ?? 0;
    const limit = cache ? cache.maxLength : c.maxPositionEmbeddings;
    if (start + seq > Math.min(limit, c.maxPositionEmbeddings)) {
      throw new ShapeError(`forward: ${start + seq} positions exceed ${cache ? `the KV cache length ${cache.maxLength}` : `n_positions ${c.maxPositionEmbeddings}`}`);
    }
    const C = c.hiddenSize;
    const H = c.numAttentionHeads;
    const D = c.headDim;
    const eps = c.layerNormEps;
    const p = (name: string) => this.params.get(name)!;

    const positions = new Int32Array(batch * seq);
    for (let i = 0; i < positions.length; i++) positions[i] = start + (i % seq);
    let x = add(embedding(p('transformer.wte.weight'), ids), embedding(p('transformer.wpe.weight'), fromData(positions, [batch, seq], 'i32'))); // [B, T, C]

    for (let l = 0; l < c.numHiddenLayers; l++) {
      const h = `transformer.h.${l}`;
      const qkv = this.linear(`${h}.attn.c_attn`, layerNorm(x, p(`${h}.ln_1.weight`), p(`${h}.ln_1.bias`), eps)); // [B, T, 3C]

      // q, k and v are read in place from the fused projection: columns [0, C), [C, 2C), [2C, 3C).
      let a: Tensor;
      if (cache) {
        for (let b = 0; b < batch; b++) {
          const dstOffset = (b * cache.maxLength + start) * C;
          copyBlock(qkv, cache.keys[l], { rows: seq, cols: C, srcOffset: b * seq * 3 * C + C, srcStride: 3 * C, dstOffset, dstStride: C });
          copyBlock(qkv, cache.values[l], { rows: seq, cols: C, srcOffset: b * seq * 3 * C + 2 * C, srcStride: 3 * C, dstOffset, dstStride: C });
        }
        const layout = { offset: 0, batchStride: cache.maxLength * C, rowStride: C };
        a = attention(qkv, cache.keys[l], cache.values[l], {
          heads: H,
          kvHeads: H,
          headDim: D,
          qStart: start,
          keyLength: start + seq,
          qLayout: { offset: 0, batchStride: seq * 3 * C, rowStride: 3 * C },
          kLayout: layout,
          vLayout: layout,
        });
      } else {
        const fused = (offset: number) => ({ offset, batchStride: seq * 3 * C, rowStride: 3 * C });
        a = attention(qkv, qkv, qkv, { heads: H, kvHeads: H, headDim: D, qLayout: fused(0), kLayout: fused(C), vLayout: fused(2 * C) }); // [B, T, C]
      }
      x = add(x, this.linear(`${h}.attn.c_proj`, a));

      const m = gelu(this.linear(`${h}.mlp.c_fc`, layerNorm(x, p(`${h}.ln_2.weight`), p(`${h}.ln_2.bias`), eps))); // [B, T, 4C]
      x = add(x, this.linear(`${h}.mlp.c_proj`, m));
    }
    if (cache) cache.length = start + seq;

    if (options.lastOnly && seq > 1) x = lastPositions(x, batch, seq, C); // [B, 1, C]
    const normed = layerNorm(x, p('transformer.ln_f.weight'), p('transformer.ln_f.bias'), eps);
    return this.linear('lm_head', normed); // [B, T, vocab]
  }

  /** Bytes of the base weights on the GPU. */
  get parameterBytes(): number {
    return parameterBytesOf(this.params);
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
  }
}
