import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSafetensors } from '@tematrainer/io';
import { loadModel } from '@tematrainer/models';
import { fromData, init, maxAbsDiff, noGrad, tidy } from '@tematrainer/tensor';
import { main } from './main.js';

const fixtures = resolve(import.meta.dirname, '../../../../shared/fixtures');
const STORIES = join(fixtures, 'stories260K/stories260K.bin');
const STORIES_HF = join(fixtures, 'stories260K-hf');

let tmp: string;

async function runMain(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

beforeAll(async () => {
  await init();
  tmp = mkdtempSync(join(tmpdir(), 'tema-cli-'));
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('tema generate', () => {
  it('greedy stories260K continues the prompt', async () => {
    const r = await runMain('generate', '--model', STORIES, '--prompt', 'Once upon a time', '--max-new-tokens', '24');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('Once upon a time, there was a little girl named Lily')).toBe(true);
  });

  it('the same seed samples the same text', async () => {
    const args = ['generate', '--model', STORIES_HF, '--prompt', 'Once upon a time', '--max-new-tokens', '20', '--temperature', '1', '--top-k', '40', '--seed', '5'];
    const first = await runMain(...args);
    const second = await runMain(...args);
    expect(first.code).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    const other = await runMain(...args.slice(0, -1), '6');
    expect(other.stdout).not.toBe(first.stdout);
  });

  it('applies an adapter', async () => {
    const base = await runMain('generate', '--model', STORIES_HF, '--prompt', 'Once upon a time', '--max-new-tokens', '30');
    const adapted = await runMain('generate', '--model', STORIES_HF, '--adapter', join(fixtures, 'golden/adapter'), '--prompt', 'Once upon a time', '--max-new-tokens', '30');
    expect(adapted.code).toBe(0);
    expect(adapted.stdout.startsWith('Once upon a time')).toBe(true);
    expect(adapted.stdout).not.toBe(base.stdout);
  });

  it('rejects a bad option value', async () => {
    const r = await runMain('generate', '--model', STORIES, '--prompt', 'x', '--max-new-tokens', 'many');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('error: --max-new-tokens must be an integer >= 1, got "many"');
  });

  it('rejects an unknown option', async () => {
    const r = await runMain('generate', '--model', STORIES, '--prompt', 'x', '--beams', '4');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(/^error: generate: Unknown option '--beams'/);
  });

  it('names a missing model path', async () => {
    const r = await runMain('generate', '--model', join(tmp, 'nothing'), '--prompt', 'x');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(join(tmp, 'nothing'));
  });
});

describe('tema logits', () => {
  it('writes input_ids and the model logits', async () => {
    const out = join(tmp, 'logits.safetensors');
    const r = await runMain('logits', '--model', STORIES_HF, '--text', 'Once upon a time', '--out', out);
    expect(r.code).toBe(0);

    const file = await openSafetensors(out);
    expect(file.tensors.get('input_ids')!.dtype).toBe('I64');
    const ids = Array.from((await file.read('input_ids', { as: 'i32' })).data);
    expect(ids).toEqual([1, 403, 407, 261, 378]);
    expect(file.tensors.get('logits')!.shape).toEqual([1, 5, 512]);
    const written = (await file.read('logits', { as: 'f32' })).data;

    const { model } = await loadModel(STORIES_HF);
    const logits = tidy(() => noGrad(() => model.forward(fromData(ids, [1, 5], 'i32'))));
    const expected = (await logits.data()) as Float32Array;
    logits.dispose();
    model.dispose();
    expect(maxAbsDiff(written, expected).diff).toBe(0);
    // The published top next-token logit of stories260K after "Once upon a time": id 432, 17.7994.
    expect(Math.abs(written[4 * 512 + 432] - 17.7994)).toBeLessThan(1e-3);
  });

  it('needs --out', async () => {
    const r = await runMain('logits', '--model', STORIES_HF, '--text', 'x');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('error: logits needs --out FILE.safetensors');
  });
});
