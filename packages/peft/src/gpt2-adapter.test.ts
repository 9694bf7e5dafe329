import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSafetensors } from '@tematrainer/io';
import { fixture, randomModel, type CausalLM, type Gpt2Config } from '@tematrainer/models';
import { fromData, init, maxAbsDiff, noGrad, randomArray, tidy, type Tensor } from '@tematrainer/tensor';
import { loadAdapter, type LoraModel } from './index.js';

const ADAPTER = fixture('peft-adapter-gpt2-tigrinya');

// GPT-2 small's blocks, read off the adapter's shapes: lora_A of c_attn is [8, 768] and lora_A of
// mlp.c_proj is [8, 3072]. The adapter does not touch the embeddings, so a 512-token vocabulary
// and 64 positions keep the model small.
const GPT2_SMALL_BLOCKS: Gpt2Config = {
  architecture: 'gpt2',
  hiddenSize: 768,
  intermediateSize: 3072,
  numHiddenLayers: 12,
  numAttentionHeads: 12,
  numKeyValueHeads: 12,
  headDim: 64,
  vocabSize: 512,
  layerNormEps: 1e-5,
  rmsNormEps: 0,
  ropeTheta: 0,
  ropeScaling: null,
  ropeLayout: 'halves',
  maxPositionEmbeddings: 64,
  tieWordEmbeddings: true,
  attentionBias: true,
  bosTokenId: 50256,
  eosTokenId: 50256,
};

let model: CausalLM;
let lora: LoraModel;

beforeAll(async () => {
  await init();
  model = randomModel(GPT2_SMALL_BLOCKS, 3);
  lora = await loadAdapter(model, ADAPTER);
});

afterAll(() => {
  lora.unload();
  model.dispose();
});

describe('fan_in_fan_out adapter on GPT-2', () => {
  it('wraps c_attn and both c_proj of every block', () => {
    expect(lora.layers.size).toBe(36);
    expect([...lora.layers.keys()].slice(0, 3)).toEqual([
      'transformer.h.0.attn.c_attn',
      'transformer.h.0.attn.c_proj',
      'transformer.h.0.mlp.c_proj',
    ]);
    expect(lora.layers.has('transformer.h.0.mlp.c_fc')).toBe(false);
    expect(lora.tensors[0].peftName).toBe('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight');
    expect(lora.tensors[1].peftName).toBe('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight');
  });

  it('has nn.Linear-shaped lora_A and lora_B', () => {
    const cAttn = lora.layers.get('transformer.h.5.attn.c_attn')!;
    expect(cAttn.loraA.shape).toEqual([8, 768]);
    expect(cAttn.loraB.shape).toEqual([2304, 8]);
    const mlpProj = lora.layers.get('transformer.h.5.mlp.c_proj')!;
    expect(mlpProj.loraA.shape).toEqual([8, 3072]);
    expect(mlpProj.loraB.shape).toEqual([768, 8]);
  });

  it('scales by lora_alpha / r = 32 / 8', () => {
    expect(lora.config.fanInFanOut).toBe(true);
    for (const layer of lora.layers.values()) expect(layer.scaling).toBe(4);
  });

  it('adds scaling · B · A on one layer', async () => {
    const name = 'transformer.h.7.attn.c_attn';
    const layer = lora.layers.get(name)!;
    const file = await openSafetensors(join(ADAPTER, 'adapter_model.safetensors'));
    const A = (await file.read(`base_model.model.${name}.lora_A.weight`, { as: 'f32' })).data; // [8, 768]
    const B = (await file.read(`base_model.model.${name}.lora_B.weight`, { as: 'f32' })).data; // [2304, 8]
    const T = 3;
    const x = randomArray(T * 768, 21);

    const run = async (forward: (input: Tensor) => Tensor) => {
      const out = tidy(() => noGrad(() => forward(fromData(x, [1, T, 768]))));
      const data = (await out.data()) as Float32Array;
      out.dispose();
      return data;
    };
    const withLora = await run((input) => layer.forward(input));
    const base = await run((input) => layer.base.forward(input));

    // scaling · (x · Aᵀ) · Bᵀ in float64.
    const expected = new Float64Array(T * 2304);
    for (let t = 0; t < T; t++) {
      const low = new Float64Array(8);
      for (let k = 0; k < 8; k++) for (let i = 0; i < 768; i++) low[k] += x[t * 768 + i] * A[k * 768 + i];
      for (let o = 0; o < 2304; o++) {
        let s = 0;
        for (let k = 0; k < 8; k++) s += B[o * 8 + k] * low[k];
        expected[t * 2304 + o] = 4 * s;
      }
    }
    const got = Float64Array.from(withLora, (v, i) => v - base[i]);
    expect(Math.max(...Array.from(expected, Math.abs))).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(got, expected).diff).toBeLessThan(2e-5);
  });
});
