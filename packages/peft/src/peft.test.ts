import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSafetensors } from '@tematrainer/io';
import { fixture, loadModel, type LoadedModel } from '@tematrainer/models';
import { ConfigError, fromData, init, maxAbsDiff, noGrad, tidy, type Tensor } from '@tematrainer/tensor';
import { getPeftModel, loadAdapter, LORA_DEFAULTS, LoraModel, saveAdapter } from './index.js';

const maxAbsDiffOf = (a: ArrayLike<number>, b: ArrayLike<number>) => maxAbsDiff(a, b).diff;

const GOLDEN = fixture('golden/tema_golden.safetensors');

let loaded: LoadedModel;
let ids: Tensor;
let tmp: string;

async function logitsOf(model: LoadedModel['model']): Promise<Float32Array> {
  const out = tidy(() => noGrad(() => model.forward(ids)));
  const data = (await out.data()) as Float32Array;
  out.dispose();
  return data;
}

beforeAll(async () => {
  await init();
  loaded = await loadModel(fixture('stories260K-hf'));
  const golden = await openSafetensors(GOLDEN);
  ids = fromData((await golden.read('input_ids', { as: 'i32' })).data, [2, 16], 'i32');
  tmp = mkdtempSync(join(tmpdir(), 'tema-peft-'));
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('peft adapters on stories260K', () => {
  it('the golden adapter gives the golden student logits', async () => {
    const lora = await loadAdapter(loaded.model, fixture('golden/adapter'));
    try {
      expect(lora.layers.size).toBe(15);
      expect(lora.tensors[0].peftName).toMatch(/^base_model\.model\.model\.layers\.0\./);
      const golden = await openSafetensors(GOLDEN);
      const expected = (await golden.read('student_logits', { as: 'f32' })).data;
      expect(maxAbsDiffOf(await logitsOf(loaded.model), expected)).toBeLessThan(1e-4);

      // Disabled adapters give exactly the base model's logits.
      lora.setEnabled(false);
      const disabled = await logitsOf(loaded.model);
      lora.setEnabled(true);
      lora.unload();
      const base = await logitsOf(loaded.model);
      expect(maxAbsDiffOf(disabled, base)).toBe(0);
    } finally {
      if (lora.layers.size) lora.unload();
    }
  });

  it('save then load gives identical logits', async () => {
    const lora = getPeftModel(loaded.model, { r: 4, loraAlpha: 8, targetModules: 'all-linear', initLoraWeights: false }, { seed: 7 });
    const before = await logitsOf(loaded.model);
    await saveAdapter(lora, join(tmp, 'adapter'), { baseModelNameOrPath: 'stories260K-hf' });
    lora.unload();
    const again = await loadAdapter(loaded.model, join(tmp, 'adapter'));
    const after = await logitsOf(loaded.model);
    again.unload();
    expect(maxAbsDiffOf(before, after)).toBe(0);
  });

  it('merge and unmerge', async () => {
    const lora = getPeftModel(loaded.model, { r: 2, targetModules: ['q_proj', 'down_proj'], initLoraWeights: false }, { seed: 3 });
    const w = loaded.model.params.get('model.layers.1.mlp.down_proj.weight')!;
    const original = (await w.data()) as Float32Array;
    const adapted = await logitsOf(loaded.model);
    lora.merge();
    expect(maxAbsDiffOf(await logitsOf(loaded.model), adapted)).toBeLessThan(1e-4);
    lora.unmerge();
    expect(maxAbsDiffOf((await w.data()) as Float32Array, original)).toBeLessThan(1e-6);
    lora.unload();
  });

  it('swap scope restores the weights even on an exception', async () => {
    const lora = getPeftModel(loaded.model, { r: 2, targetModules: ['v_proj'], initLoraWeights: false }, { seed: 5 });
    const own = lora.parameters();
    const other = lora.cloneParameters();
    expect(() => {
      using _swap = lora.swapIn(other);
      expect(lora.parameters()[0]).toBe(other[0]);
      throw new Error('inside the scope');
    }).toThrow('inside the scope');
    expect(lora.parameters()).toEqual(own);
    for (const t of other) t.dispose();
    lora.unload();
  });

  it('targets that match nothing list the module names', () => {
    expect(() => new LoraModel(loaded.model, { ...LORA_DEFAULTS, targetModules: ['c_attn'] })).toThrow(ConfigError);
    expect(() => new LoraModel(loaded.model, { ...LORA_DEFAULTS, targetModules: ['c_attn'] })).toThrow(/self_attn\.q_proj/);
  });

  it('an adapter for another model names the tensor and both shapes', async () => {
    await expect(loadAdapter(loaded.model, fixture('peft-adapter-gpt2-tigrinya'))).rejects.toThrow(/fan_in_fan_out|c_attn/);
  });

  it('prints trainable parameters as peft does', () => {
    const lora = getPeftModel(loaded.model, { r: 4, targetModules: ['q_proj', 'v_proj', 'down_proj'] });
    const { trainable, summary } = lora.trainableParameters();
    // 5 layers x (q: 4*64 + 64*4, v: 4*64 + 32*4, down: 4*172 + 64*4) = 9200, the golden README's count
    expect(trainable).toBe(9200);
    expect(summary).toMatch(/^trainable params: 9,200 \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}$/);
    lora.unload();
  });
});


describe('merged model as a Hugging Face folder', () => {
  it('reloads with the adapted logits, also from the llama2.c layout', async () => {
    const { saveMergedModel } = await import('./merge.js');
    for (const source of [fixture('stories260K-hf'), fixture('stories260K/stories260K.bin')]) {
      const base = await loadModel(source);
      const lora = getPeftModel(base.model, { r: 2, targetModules: 'all-linear', initLoraWeights: false }, { seed: 11 });
      const adapted = await logitsOf(base.model);
      const dir = join(tmp, `merged-${base.format}`);
      await saveMergedModel(lora, dir, { tokenizerFolder: fixture('stories260K-hf') });
      const merged = await loadModel(dir);
      expect(merged.config.ropeLayout).toBe('halves');
      // Merged weights round differently from the separate low-rank path: compare relative to
      // the logits' scale, which random (non-zero) B makes large here.
      const scale = Math.max(...Array.from(adapted, Math.abs));
      expect(maxAbsDiffOf(await logitsOf(merged.model), adapted) / scale).toBeLessThan(2e-5);
      merged.model.dispose();
      lora.unload();
      base.model.dispose();
    }
  });
});
