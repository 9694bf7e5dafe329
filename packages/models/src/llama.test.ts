import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { fromData, init, noGrad, tidy } from '@tematrainer/tensor';
import { fixture } from './fixtures.js';
import { generate } from './generate.js';
import { loadModel, type LoadedModel } from './load.js';

const PUBLISHED_SHA256 = 'beeb5cb46785efee81a8545300b31e396b595e5ce6f3b77db201545501981d14';
const TOP5 = [
  [432, 17.7994],
  [383, 14.2813],
  [322, 9.7097],
  [353, 9.5873],
  [323, 9.1342],
];

interface ReferenceCase {
  text: string;
  token_ids: number[];
  logits: number[][];
}

const reference: { cases: ReferenceCase[] } = JSON.parse(readFileSync(fixture('stories260K/reference_logits.json'), 'utf8'));

const FORMS: [string, string][] = [
  ['llama2.c', fixture('stories260K/stories260K.bin')],
  ['GGUF', fixture('stories260K/stories260K.gguf')],
  ['Hugging Face', fixture('stories260K-hf')],
];

beforeAll(async () => {
  await init();
});

describe.each(FORMS)('stories260K from its %s form', (_form, path) => {
  let loaded: LoadedModel;
  beforeAll(async () => {
    loaded = await loadModel(path);
  });

  it('tokenizes the prompt as llama2.c', () => {
    expect(loaded.tokenizer.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });

  it('gives the published top-5 next-token logits', async () => {
    const logits = tidy(() => noGrad(() => loaded.model.forward(fromData([1, 403, 407, 261, 378], [1, 5], 'i32'))));
    const all = (await logits.data()) as Float32Array;
    logits.dispose();
    const last = all.subarray(4 * 512, 5 * 512);
    const order = Array.from(last.keys()).sort((a, b) => last[b] - last[a]);
    for (let k = 0; k < 5; k++) {
      expect(order[k]).toBe(TOP5[k][0]);
      expect(Math.abs(last[order[k]] - TOP5[k][1])).toBeLessThan(1e-3);
    }
  });

  it('matches the reference logits at every position', async () => {
    for (const c of reference.cases) {
      const logits = tidy(() => noGrad(() => loaded.model.forward(fromData(c.token_ids, [1, c.token_ids.length], 'i32'))));
      const all = (await logits.data()) as Float32Array;
      logits.dispose();
      let worst = 0;
      c.logits.forEach((row, t) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(all[t * 512 + j] - v)))));
      expect(worst, c.text).toBeLessThan(1e-3);
    }
  });

  it('generates the published greedy text for 200 steps', async () => {
    const result = await generate(loaded.model, loaded.tokenizer, [1], { maxNewTokens: 200, stopIds: [] });
    expect(result.newIds.slice(0, 16)).toEqual([403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338]);
    expect(createHash('sha256').update(result.text).digest('hex')).toBe(PUBLISHED_SHA256);
  });
});
