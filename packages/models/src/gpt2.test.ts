import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSafetensors, writeSafetensors } from '@tematrainer/io';
import { backward, fromData, init, maxAbsDiff, mul, noGrad, randomArray, sum, tidy } from '@tematrainer/tensor';
import type { CausalLM } from './causal-lm.js';
import type { ModelConfig } from './config.js';
import { fixture } from './fixtures.js';
import type { Gpt2Config } from './gpt2.js';
import { KVCache } from './llama.js';
import { loadModel } from './load.js';
import { randomModel, saveModel } from './random.js';

// Vocabulary 512 so that stories260K's tokenizer.json can go into the saved folders.
const GPT2_TINY: Gpt2Config = {
  architecture: 'gpt2',
  hiddenSize: 32,
  intermediateSize: 128,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 4,
  headDim: 8,
  vocabSize: 512,
  layerNormEps: 1e-5,
  rmsNormEps: 0,
  ropeTheta: 0,
  ropeScaling: null,
  ropeLayout: 'halves',
  maxPositionEmbeddings: 64,
  tieWordEmbeddings: true,
  attentionBias: true,
  bosTokenId: 1,
  eosTokenId: 2,
};

const QWEN2_TINY: ModelConfig = {
  architecture: 'qwen2',
  hiddenSize: 32,
  intermediateSize: 48,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 8,
  vocabSize: 512,
  rmsNormEps: 1e-6,
  ropeTheta: 1000000,
  ropeScaling: null,
  ropeLayout: 'halves',
  maxPositionEmbeddings: 128,
  tieWordEmbeddings: false,
  attentionBias: true,
  bosTokenId: 1,
  eosTokenId: 2,
};

const IDS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315];

let tmp: string;

beforeAll(async () => {
  await init();
  tmp = mkdtempSync(join(tmpdir(), 'tema-models-'));
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function logitsOf(model: CausalLM, ids: number[], batch = 1): Promise<Float32Array> {
  const out = tidy(() => noGrad(() => model.forward(fromData(ids, [batch, ids.length / batch], 'i32'))));
  const data = (await out.data()) as Float32Array;
  out.dispose();
  return data;
}

/** Save `model` with stories260K's tokenizer into a fresh folder and load it back. */
async function roundTrip(model: CausalLM, name: string): Promise<CausalLM> {
  const dir = join(tmp, name);
  await saveModel(model, dir);
  copyFileSync(fixture('stories260K-hf/tokenizer.json'), join(dir, 'tokenizer.json'));
  const loaded = await loadModel(dir);
  expect(loaded.config.architecture).toBe(model.config.architecture);
  return loaded.model;
}

describe.each([
  ['GPT-2', GPT2_TINY],
  ['Qwen2', QWEN2_TINY],
])('random %s-shaped model', (name, config) => {
  it('saved and reloaded gives identical logits', async () => {
    const model = randomModel(config, 7);
    const reloaded = await roundTrip(model, name);
    const before = await logitsOf(model, [...IDS, ...IDS.slice().reverse()], 2);
    const after = await logitsOf(reloaded, [...IDS, ...IDS.slice().reverse()], 2);
    expect(before.length).toBe(2 * IDS.length * 512);
    expect(maxAbsDiff(before, after).diff).toBe(0);
    model.dispose();
    reloaded.dispose();
  });

  it('KV-cache decoding matches the full forward pass', async () => {
    const model = randomModel(config, 8);
    const full = await logitsOf(model, IDS);
    const cache = new KVCache(model.config, 1, IDS.length);
    const rows: Float32Array[] = [];
    // The prompt in one call, then one token per call, as generate() does.
    const steps = [IDS.slice(0, 5), ...IDS.slice(5).map((id) => [id])];
    for (const step of steps) {
      const out = tidy(() => noGrad(() => model.forward(fromData(step, [1, step.length], 'i32'), { cache, lastOnly: true })));
      rows.push((await out.data()) as Float32Array);
      out.dispose();
    }
    cache.dispose();
    for (let s = 0; s < steps.length; s++) {
      const position = s + 4;
      const expected = full.subarray(position * 512, (position + 1) * 512);
      expect(maxAbsDiff(rows[s], expected).diff, `position ${position}`).toBeLessThan(1e-5);
    }
    model.dispose();
  });
});

/**
 * GPT-2's forward pass in float64 straight from the file's tensors, as transformers computes it:
 * Conv1D layers are x · W + b with W [in, out].
 */
function gpt2Reference(w: Map<string, Float64Array>, c: Gpt2Config, ids: number[]): Float64Array {
  const C = c.hiddenSize;
  const T = ids.length;
  const conv1d = (x: Float64Array, name: string, inF: number, outF: number) => {
    const W = w.get(`${name}.weight`)!;
    const b = w.get(`${name}.bias`)!;
    const y = new Float64Array(T * outF);
    for (let t = 0; t < T; t++) {
      for (let o = 0; o < outF; o++) {
        let s = b[o];
        for (let i = 0; i < inF; i++) s += x[t * inF + i] * W[i * outF + o];
        y[t * outF + o] = s;
      }
    }
    return y;
  };
  const layerNorm = (x: Float64Array, name: string) => {
    const y = new Float64Array(x.length);
    for (let t = 0; t < T; t++) {
      const row = x.subarray(t * C, (t + 1) * C);
      const mean = row.reduce((a, b) => a + b, 0) / C;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / C;
      for (let j = 0; j < C; j++) {
        y[t * C + j] = ((row[j] - mean) / Math.sqrt(variance + c.layerNormEps)) * w.get(`${name}.weight`)![j] + w.get(`${name}.bias`)![j];
      }
    }
    return y;
  };
  const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

  const wte = w.get('transformer.wte.weight')!;
  const wpe = w.get('transformer.wpe.weight')!;
  let x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) for (let j = 0; j < C; j++) x[t * C + j] = wte[ids[t] * C + j] + wpe[t * C + j];

  const H = c.numAttentionHeads;
  const D = c.headDim;
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `transformer.h.${l}`;
    const qkv = conv1d(layerNorm(x, `${p}.ln_1`), `${p}.attn.c_attn`, C, 3 * C);
    const a = new Float64Array(T * C);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const scores = [];
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += qkv[i * 3 * C + h * D + d] * qkv[j * 3 * C + C + h * D + d];
          scores.push(s / Math.sqrt(D));
        }
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((u, v) => u + v, 0);
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let j = 0; j <= i; j++) s += (e[j] / z) * qkv[j * 3 * C + 2 * C + h * D + d];
          a[i * C + h * D + d] = s;
        }
      }
    }
    const attnOut = conv1d(a, `${p}.attn.c_proj`, C, C);
    x = x.map((v, i) => v + attnOut[i]);
    const m = conv1d(layerNorm(x, `${p}.ln_2`), `${p}.mlp.c_fc`, C, c.intermediateSize).map(gelu);
    const mlpOut = conv1d(m, `${p}.mlp.c_proj`, c.intermediateSize, C);
    x = x.map((v, i) => v + mlpOut[i]);
  }
  const normed = layerNorm(x, 'transformer.ln_f');
  const logits = new Float64Array(T * c.vocabSize);
  for (let t = 0; t < T; t++) {
    for (let v = 0; v < c.vocabSize; v++) {
      let s = 0;
      for (let j = 0; j < C; j++) s += normed[t * C + j] * wte[v * C + j];
      logits[t * c.vocabSize + v] = s;
    }
  }
  return logits;
}

describe('GPT-2 forward', () => {
  it('matches a float64 reference from the file tensors', async () => {
    // Larger weights than randomModel's 0.02 so that attention and GELU are far from linear.
    const model = randomModel(GPT2_TINY, 9);
    for (const [name, t] of model.params) {
      if (!/ln_|\.bias$/.test(name)) t.write(((await t.data()) as Float32Array).map((v) => v * 20));
    }
    const reloaded = await roundTrip(model, 'gpt2-reference');
    const file = await openSafetensors(join(tmp, 'gpt2-reference', 'model.safetensors'));
    const weights = new Map<string, Float64Array>();
    for (const name of file.tensors.keys()) weights.set(name, Float64Array.from((await file.read(name, { as: 'f32' })).data));
    expect(file.tensors.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([32, 96]);

    const expected = gpt2Reference(weights, GPT2_TINY, IDS);
    const got = await logitsOf(reloaded, IDS);
    const { diff, index } = maxAbsDiff(got, expected);
    const scale = Math.max(...Array.from(expected, Math.abs));
    expect(scale).toBeGreaterThan(0.5);
    expect(diff / scale, `element ${index}: got ${got[index]}, expected ${expected[index]}`).toBeLessThan(1e-5);
    model.dispose();
    reloaded.dispose();
  });

  it('reads files without the transformer. prefix', async () => {
    const model = randomModel(GPT2_TINY, 10);
    const dir = join(tmp, 'gpt2-bare');
    await saveModel(model, dir);
    // Rewrite the weights under the original gpt2 repository's names (h.0.attn..., wte.weight).
    const file = await openSafetensors(join(dir, 'model.safetensors'));
    const record: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const [name, info] of file.tensors) {
      record[name.replace(/^transformer\./, '')] = { dtype: 'F32', shape: [...info.shape], data: (await file.read(name, { as: 'f32' })).data };
    }
    await writeSafetensors(join(dir, 'model.safetensors'), record);
    copyFileSync(fixture('stories260K-hf/tokenizer.json'), join(dir, 'tokenizer.json'));
    const loaded = await loadModel(dir);
    expect(maxAbsDiff(await logitsOf(loaded.model, IDS), await logitsOf(model, IDS)).diff).toBe(0);
    model.dispose();
    loaded.model.dispose();
  });

  it('gives gradients that match finite differences of the reference', async () => {
    const model = randomModel(GPT2_TINY, 11);
    for (const [name, t] of model.params) {
      if (!/ln_|\.bias$/.test(name)) t.write(((await t.data()) as Float32Array).map((v) => v * 20));
    }
    const dir = join(tmp, 'gpt2-gradient');
    await saveModel(model, dir);
    const file = await openSafetensors(join(dir, 'model.safetensors'));
    const weights = new Map<string, Float64Array>();
    for (const name of file.tensors.keys()) weights.set(name, Float64Array.from((await file.read(name, { as: 'f32' })).data));

    // Loss = sum(r * logits) for fixed random r; gradients of the weights held by the model.
    const r = randomArray(IDS.length * 512, 5);
    const checked = ['transformer.h.0.attn.c_attn.weight', 'transformer.h.1.mlp.c_fc.weight', 'transformer.h.0.ln_1.weight', 'transformer.ln_f.bias'];
    for (const name of checked) model.params.get(name)!.requiresGrad = true;
    tidy(() => {
      const logits = model.forward(fromData(IDS, [1, IDS.length], 'i32'));
      backward(sum(mul(logits, fromData(r, logits.shape))));
    });

    const loss = () => {
      const logits = gpt2Reference(weights, GPT2_TINY, IDS);
      let s = 0;
      for (let i = 0; i < logits.length; i++) s += logits[i] * r[i];
      return s;
    };
    const h = 1e-5;
    for (const name of checked) {
      const t = model.params.get(name)!;
      const grad = (await t.grad!.data()) as Float32Array;
      const values = weights.get(name)!;
      const conv1d = t.shape.length === 2;
      // A few elements spread over the tensor: for c_attn, some in each of q, k and v.
      for (const fraction of [0.05, 0.4, 0.75, 0.97]) {
        const held = Math.floor(fraction * t.size);
        // The model holds Conv1D weights as [out, in]; the file and the reference use [in, out].
        const inFeatures = conv1d ? t.shape[1] : 1;
        const stored = conv1d ? (held % inFeatures) * t.shape[0] + Math.floor(held / inFeatures) : held;
        const v = values[stored];
        values[stored] = v + h;
        const up = loss();
        values[stored] = v - h;
        const down = loss();
        values[stored] = v;
        const numeric = (up - down) / (2 * h);
        expect(Math.abs(grad[held] - numeric) / Math.max(1, Math.abs(numeric)), `${name} element ${held}: got ${grad[held]}, expected ${numeric}`).toBeLessThan(2e-3);
      }
      t.grad!.dispose();
    }
    model.dispose();
  });
});
