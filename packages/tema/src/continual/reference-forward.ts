import { attentionReference, matmulReference, rmsNormReference, ropeInverseFrequencies, ropeReference } from '@tematrainer/tensor';
import type { ModelConfig } from '@tematrainer/models';

/**
 * A float64 forward pass of a Llama-family model on the CPU, built only from the plain
 * references of the tensor ops. Tests use it to check GPU results by an independent path; it
 * is far too slow for anything but tiny models.
 */
export function referenceLogits(
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  ids: number[],
): Float64Array {
  const { hiddenSize: H, numAttentionHeads: nH, numKeyValueHeads: nKv, headDim: D, intermediateSize: I, vocabSize: V } = config;
  const T = ids.length;
  const w = (name: string) => {
    const t = weights.get(name);
    if (!t) throw new Error(`reference forward: missing ${name}`);
    return t;
  };
  const inv = ropeInverseFrequencies(D, config.ropeTheta, config.ropeScaling);
  const linear = (x: Float64Array, name: string, outF: number, inF: number) => matmulReference(x, w(name), T, outF, inF, false, true);

  const emb = w('model.embed_tokens.weight');
  let x = new Float64Array(T * H);
  ids.forEach((id, t) => x.set(emb.subarray(id * H, (id + 1) * H), t * H));
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const p = `model.layers.${l}`;
    const h = rmsNormReference(x, w(`${p}.input_layernorm.weight`), H, config.rmsNormEps);
    const q = ropeReference(linear(h, `${p}.self_attn.q_proj.weight`, nH * D, H), nH, D, T, inv, config.ropeLayout);
    const k = ropeReference(linear(h, `${p}.self_attn.k_proj.weight`, nKv * D, H), nKv, D, T, inv, config.ropeLayout);
    const v = linear(h, `${p}.self_attn.v_proj.weight`, nKv * D, H);
    const a = attentionReference(q, k, v, 1, T, nH, nKv, D);
    const o = matmulReference(a, w(`${p}.self_attn.o_proj.weight`), T, H, nH * D, false, true);
    x = x.map((v0, i) => v0 + o[i]);
    const h2 = rmsNormReference(x, w(`${p}.post_attention_layernorm.weight`), H, config.rmsNormEps);
    const gate = linear(h2, `${p}.mlp.gate_proj.weight`, I, H);
    const up = linear(h2, `${p}.mlp.up_proj.weight`, I, H);
    const m = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
    const down = matmulReference(m, w(`${p}.mlp.down_proj.weight`), T, H, I, false, true);
    x = x.map((v0, i) => v0 + down[i]);
  }
  const normed = rmsNormReference(x, w('model.norm.weight'), H, config.rmsNormEps);
  const head = weights.get('lm_head.weight') ?? emb;
  return matmulReference(normed, head, T, V, H, false, true);
}

/** Mean next-token NLL of `ids` under the reference forward, summed over positions 0..T-2. */
export function referenceNll(config: ModelConfig, weights: Map<string, Float64Array>, ids: number[]): { sum: number; count: number } {
  const logits = referenceLogits(config, weights, ids);
  const V = config.vocabSize;
  let sum = 0;
  for (let t = 0; t < ids.length - 1; t++) {
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, logits[t * V + j]);
    let z = 0;
    for (let j = 0; j < V; j++) z += Math.exp(logits[t * V + j] - m);
    sum += m + Math.log(z) - logits[t * V + ids[t + 1]];
  }
  return { sum, count: ids.length - 1 };
}
