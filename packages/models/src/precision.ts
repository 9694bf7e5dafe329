import { cast, logOnce, engine, noGrad, untrack } from '@tematrainer/tensor';
import type { CausalLM } from './causal-lm.js';
import { DenseLinear } from './linear.js';

/**
 * Store the frozen weights of every full-precision linear layer as f16 (the matmuls still
 * accumulate in f32), halving their GPU bytes. Embeddings, norms and an output head tied to the
 * embedding stay f32. Without the adapter's shader-f16 feature nothing changes and a notice says so.
 * Returns the number of layers converted.
 */
export function storeLinearWeightsAsF16(model: CausalLM): number {
  if (!engine().info.features.has('shader-f16')) {
    logOnce('shader-f16 is not available on this adapter: keeping f32 weights');
    return 0;
  }
  const embeddings = new Set([model.params.get('model.embed_tokens.weight'), model.params.get('transformer.wte.weight')]);
  let converted = 0;
  for (const [name, layer] of model.linears) {
    if (!(layer instanceof DenseLinear) || layer.weight.dtype !== 'f32' || embeddings.has(layer.weight)) continue;
    const old = layer.weight;
    const half = untrack(noGrad(() => cast(old, 'f16')));
    half.name = old.name;
    for (const [key, t] of model.params) if (t === old) model.params.set(key, half);
    layer.weight = half;
    old.dispose();
    converted++;
  }
  return converted;
}
