import { beforeAll, describe, expect, it } from 'vitest';
import { engine, fromData, init, maxAbsDiff, noGrad, tidy } from '@tematrainer/tensor';
import { fixture } from './fixtures.js';
import { generate } from './generate.js';
import { loadModel } from './load.js';

beforeAll(async () => {
  await init();
});

describe('f16 weights', () => {
  it('stories260K with f16 linear weights stays close to f32', async () => {
    if (!engine().info.features.has('shader-f16')) return; // nothing to compare without shader-f16
    const full = await loadModel(fixture('stories260K-hf'));
    const half = await loadModel(fixture('stories260K-hf'), { dtype: 'f16' });
    const q = half.model.params.get('model.layers.0.self_attn.q_proj.weight')!;
    expect(q.dtype).toBe('f16');
    expect(half.model.params.get('model.embed_tokens.weight')!.dtype).toBe('f32');
    // 35 projections of the 5 blocks plus the untied head go from 4 to 2 bytes per value.
    expect(full.model.parameterBytes - half.model.parameterBytes).toBe(2 * (906_240 / 4 + 512 * 64));

    const ids = [1, 403, 407, 261, 378];
    const logits = async (m: typeof full.model) => {
      const out = tidy(() => noGrad(() => m.forward(fromData(ids, [1, 5], 'i32'))));
      const data = (await out.data()) as Float32Array;
      out.dispose();
      return data;
    };
    // Half precision keeps about 3 significant digits of each weight; logits reach about 18.
    expect(maxAbsDiff(await logits(half.model), await logits(full.model)).diff).toBeLessThan(0.05);

    const a = await generate(full.model, full.tokenizer, [1], { maxNewTokens: 40, stopIds: [] });
    const b = await generate(half.model, half.tokenizer, [1], { maxNewTokens: 40, stopIds: [] });
    expect(b.newIds).toEqual(a.newIds);
    full.model.dispose();
    half.model.dispose();
  });
});
