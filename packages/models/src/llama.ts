import {
  add,
  attention,
  copyBlock,
  embedding,
  empty,
  formatShape,
  rmsNorm,
  rope,
  ropeTable,
  ShapeError,
  swiglu,
  untrack,
  type Tensor,
} from '@tematrainer/tensor';
import type { ModelConfig } from './config.js';
import { DenseLinear, type LinearLayer } from './linear.js';
import { FormatError } from '@tematrainer/tensor';
import { lastPositions, parameterBytesOf } from './causal-lm.js';
import { loadCheckedWeights, type WeightSource } from './weights.js';

/** Keys and values of every layer for incremental decoding: [batch, maxLength, kvHeads * headDim] each. */
export class KVCache {
  length = 0;
  readonly keys: Tensor[];
  readonly values: Tensor[];

  constructor(
    readonly config: ModelConfig,
    readonly batch: number,
    readonly maxLength: number,
  ) {
    const width = config.numKeyValueHeads * config.headDim;
    this.keys = Array.from({ length: config.numHiddenLayers }, () => untrack(empty([batch, maxLength, width])));
    this.values = Array.from({ length: config.numHiddenLayers }, () => untrack(empty([batch, maxLength, width])));
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
  }
}

export interface ForwardOptions {
  /** Append this call's keys and values to the cache and attend over everything in it. */
  cache?: KVCache;
  /** Compute logits for the last position of each sequence only (generation). */
  lastOnly?: boolean;
}

/** The weights every Llama-family checkpoint must have, with their shapes. */
export function expectedWeights(c: ModelConfig): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  out.set('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]);
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}`;
    out.set(`${p}.input_layernorm.weight`, [c.hiddenSize]);
    out.set(`${p}.self_attn.q_proj.weight`, [q, c.hiddenSize]);
    out.set(`${p}.self_attn.k_proj.weight`, [kv, c.hiddenSize]);
    out.set(`${p}.self_attn.v_proj.weight`, [kv, c.hiddenSize]);
    out.set(`${p}.self_attn.o_proj.weight`, [c.hiddenSize, q]);
    if (c.attentionBias) {
      out.set(`${p}.self_attn.q_proj.bias`, [q]);
      out.set(`${p}.self_attn.k_proj.bias`, [kv]);
      out.set(`${p}.self_attn.v_proj.bias`, [kv]);
    }
    out.set(`${p}.post_attention_layernorm.weight`, [c.hiddenSize]);
    out.set(`${p}.mlp.gate_proj.weight`, [c.intermediateSize, c.hiddenSize]);
    out.set(`${p}.mlp.up_proj.weight`, [c.intermediateSize, c.hiddenSize]);
    out.set(`${p}.mlp.down_proj.weight`, [c.hiddenSize, c.intermediateSize]);
  }
  out.set('model.norm.weight', [c.hiddenSize]);
  if (!c.tieWordEmbeddings) out.set('lm_head.weight', [c.vocabSize, c.hiddenSize]);
  return out;
}

/** The names of the linear layers (LoRA targets) of one decoder layer, as Hugging Face names them. */
export const LLAMA_LINEARS = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
] as const;

/**
 * A Llama-family decoder (Llama 2/3, Qwen2, Mistral, SmolLM, TinyLlama) as transformers'
 * LlamaForCausalLM computes it: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU.
 * Base weights are frozen tensors under their Hugging Face names; linear layers are looked up
 * by module name so that adapters can replace them.
 */
export class LlamaModel {
  readonly params = new Map<string, Tensor>();
  readonly linears = new Map<string, LinearLayer>();
  private invFreq: Tensor;

  constructor(
    readonly config: ModelConfig,
    params: Map<string, Tensor>,
  ) {
    const expected = expectedWeights(config);
    for (const [name, shape] of expected) {
      const t = params.get(name);
      if (!t) throw new FormatError(`model weights: tensor "${name}" is missing`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new FormatError(`model weights: tensor "${name}" has shape ${formatShape(t.shape)}, the config expects ${formatShape(shape)}`);
      }
      t.name = name;
      this.params.set(name, t);
    }
    for (let l = 0; l < config.numHiddenLayers; l++) {
      for (const suffix of LLAMA_LINEARS) {
        const name = `model.layers.${l}.${suffix}`;
        this.linears.set(name, new DenseLinear(name, this.params.get(`${name}.weight`)!, this.params.get(`${name}.bias`) ?? null));
      }
    }
    const head = config.tieWordEmbeddings ? this.params.get('model.embed_tokens.weight')! : this.params.get('lm_head.weight')!;
    this.linears.set('lm_head', new DenseLinear('lm_head', head));
    this.invFreq = untrack(ropeTable(config.headDim, config.ropeTheta, config.ropeScaling));
  }

  /** Load and check every weight the config needs from a checkpoint, uploading each as f32. */
  static async load(config: ModelConfig, source: WeightSource): Promise<LlamaModel> {
    const params = await loadCheckedWeights(source, expectedWeights(config), {
      examples: (n) => n.includes('layers.0.') || !n.includes('layers.'),
    });
    return new LlamaModel(config, params);
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
    if (cache && start + seq > cache.maxLength) {
      throw new ShapeError(`forward: ${start + seq} positions exceed the KV cache length ${cache.maxLength}`);
    }
    const H = c.numAttentionHeads;
    const Hkv = c.numKeyValueHeads;
    const D = c.headDim;
    const kvWidth = Hkv * D;

    let x = embedding(this.params.get('model.embed_tokens.weight')!, ids); // [B, T, hidden]
    for (let l = 0; l < c.numHiddenLayers; l++) {
      const p = `model.layers.${l}`;
      const h = rmsNorm(x, this.params.get(`${p}.input_layernorm.weight`)!, c.rmsNormEps);
      const q = rope(this.linear(`${p}.self_attn.q_proj`, h), H, D, { layout: c.ropeLayout, invFreq: this.invFreq, start }); // [B, T, H*D]
      const k = rope(this.linear(`${p}.self_attn.k_proj`, h), Hkv, D, { layout: c.ropeLayout, invFreq: this.invFreq, start }); // [B, T, Hkv*D]
      const v = this.linear(`${p}.self_attn.v_proj`, h); // [B, T, Hkv*D]

      let a: Tensor;
      if (cache) {
        for (let b = 0; b < batch; b++) {
          const block = { rows: seq, cols: kvWidth, srcOffset: b * seq * kvWidth, srcStride: kvWidth, dstStride: kvWidth };
          const dstOffset = (b * cache.maxLength + start) * kvWidth;
          copyBlock(k, cache.keys[l], { ...block, dstOffset });
          copyBlock(v, cache.values[l], { ...block, dstOffset });
        }
        const layout = { offset: 0, batchStride: cache.maxLength * kvWidth, rowStride: kvWidth };
        a = attention(q, cache.keys[l], cache.values[l], {
          heads: H,
          kvHeads: Hkv,
          headDim: D,
          qStart: start,
          keyLength: start + seq,
          kLayout: layout,
          vLayout: layout,
        });
      } else {
        a = attention(q, k, v, { heads: H, kvHeads: Hkv, headDim: D }); // [B, T, H*D]
      }
      x = add(x, this.linear(`${p}.self_attn.o_proj`, a));

      const h2 = rmsNorm(x, this.params.get(`${p}.post_attention_layernorm.weight`)!, c.rmsNormEps);
      const m = swiglu(this.linear(`${p}.mlp.gate_proj`, h2), this.linear(`${p}.mlp.up_proj`, h2)); // [B, T, intermediate]
      x = add(x, this.linear(`${p}.mlp.down_proj`, m));
    }
    if (cache) cache.length = start + seq;

    if (options.lastOnly && seq > 1) x = lastPositions(x, batch, seq, c.hiddenSize); // [B, 1, hidden]
    const normed = rmsNorm(x, this.params.get('model.norm.weight')!, c.rmsNormEps);
    return this.linear('lm_head', normed); // [B, T, vocab]
  }

  /** Bytes of the base weights on the GPU. */
  get parameterBytes(): number {
    return parameterBytesOf(this.params);
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    this.invFreq.dispose();
  }
}
