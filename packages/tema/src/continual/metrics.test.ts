import { describe, expect, it } from 'vitest';
import { forgettingReduction, summarize, summaryTable, type MethodResult } from './metrics.js';

const result = (method: string, perplexity: number[][]): MethodResult => ({
  method,
  domains: ['base', 'a', 'b', 'c'],
  perplexity,
  losses: [],
  stepSeconds: 0.5,
  tokensPerSecond: 2048,
  peakBytes: 2 ** 21,
  trainSeconds: 10,
});

describe('continual metrics', () => {
  const sft = result('sft', [
    [7, 100, 80, 300],
    [10, 20, 40, 120],
    [14, 30, 15, 90],
    [21, 50, 30, 18],
  ]);

  it('summarizes a perplexity matrix', () => {
    const s = summarize(sft);
    expect(s.forgetting).toBe(14);
    expect(s.forgettingRatio).toBe(3);
    expect(s.justLearned).toEqual([20, 15, 18]);
    expect(s.averageJustLearned).toBeCloseTo(53 / 3, 12);
    expect(s.averageFinal).toBeCloseTo(98 / 3, 12);
    // (50 - 20 + 30 - 15) / 2
    expect(s.backwardTransfer).toBe(22.5);
  });

  it('compares forgetting between methods', () => {
    const tema = summarize(result('tema', [[7, 100, 80, 300], [8, 22, 40, 120], [9, 25, 16, 90], [10.5, 30, 20, 19]]));
    expect(forgettingReduction(summarize(sft), tema)).toBeCloseTo(0.75, 12);
    const lines = summaryTable([summarize(sft), tema]).split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[2]).toMatch(/^sft\s+7\.00\s+21\.00\s+\+14\.00/);
  });
});
