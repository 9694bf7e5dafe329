import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturesDir } from '@tematrainer/models';
import { init } from '@tematrainer/tensor';
import { DEFAULT_OPTIONS, QUICK_OPTIONS, type ContinualOptions } from './options.js';
import { referenceNll } from './reference-forward.js';
import { runContinual, type ContinualResult } from './run.js';
import { matrixTable, summaryTable } from './metrics.js';

let tmp: string;
let quick: ContinualResult;

function options(out: string): ContinualOptions {
  return { ...DEFAULT_OPTIONS, ...QUICK_OPTIONS, outDir: join(tmp, out), assetsDir: join(tmp, 'assets') };
}

beforeAll(async () => {
  await init();
  tmp = mkdtempSync(join(tmpdir(), 'tema-continual-'));
  process.env.TEMA_ASSETS_MIRROR = fixturesDir();
  quick = await runContinual(options('quick'));
}, 600_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('continual run, --quick', () => {
  it('has every row of the report, all finite', () => {
    expect(quick.results.map((r) => r.method)).toEqual(['sft', 'tema']);
    for (const r of quick.results) {
      expect(r.domains).toEqual(['tinystories', 'tinyshakespeare', 'federalist_papers', 'rfc2616']);
      expect(r.perplexity).toHaveLength(4);
      for (const row of r.perplexity) {
        expect(row).toHaveLength(4);
        for (const v of row) expect(Number.isFinite(v) && v > 1).toBe(true);
      }
      expect(r.losses.length).toBeGreaterThan(0);
    }
    const table = summaryTable(quick.summaries);
    expect(table.split('\n')).toHaveLength(4);
    expect(matrixTable(quick.results[0])).toContain('3: rfc2616');
    for (const s of quick.summaries) {
      for (const v of [s.forgetting, s.averageFinal, s.backwardTransfer, s.stepSeconds, s.peakBytes]) expect(Number.isFinite(v)).toBe(true);
    }
  });

  it('writes the report folder', () => {
    const html = readFileSync(join(quick.outDir, 'report.html'), 'utf8');
    expect(html).toContain('echarts');
    expect(html).toContain('heatmap');
    const lines = readFileSync(join(quick.outDir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(6);
    expect(JSON.parse(lines[0]).method).toBe('sft');
    const config = JSON.parse(readFileSync(join(quick.outDir, 'tema', 'adapter_config.json'), 'utf8'));
    expect(config.peft_type).toBe('LORA');
    expect(readFileSync(join(quick.outDir, 'tema', 'adapter_ema.safetensors')).length).toBeGreaterThan(1000);
  });

  it('base-domain perplexity before training matches an independent float64 forward', async () => {
    const base = quick.domains[0];
    const { model } = quick.model;
    const weights = new Map<string, Float64Array>();
    for (const [name, t] of model.params) weights.set(name, Float64Array.from((await t.data()) as Float32Array));
    let sum = 0;
    let count = 0;
    for (const chunk of base.split.eval) {
      const r = referenceNll(model.config, weights, Array.from(chunk));
      sum += r.sum;
      count += r.count;
    }
    const expected = Math.exp(sum / count);
    const measured = quick.results[0].perplexity[0][0];
    expect(Math.abs(measured / expected - 1)).toBeLessThan(1e-4);
  });

  it('an interrupted run resumes to the same result', async () => {
    let steps = 0;
    const first = await runContinual(options('resume'), { shouldStop: () => ++steps === 9 });
    expect(first.interrupted).toBe(true);
    const resumed = await runContinual({ ...options('resume'), resume: true });
    expect(resumed.interrupted).toBe(false);
    for (let m = 0; m < 2; m++) {
      const a = quick.results[m].perplexity.flat();
      const b = resumed.results[m].perplexity.flat();
      for (let i = 0; i < a.length; i++) expect(Math.abs(b[i] / a[i] - 1)).toBeLessThan(1e-4);
    }
  }, 600_000);
});
