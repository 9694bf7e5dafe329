/**
 * Forgetting measures over a perplexity matrix. Row 0 is the model before training, row s the
 * model after learning domain s (1-based); column 0 is the base domain, column j the j-th
 * learned domain. Perplexity is exp(mean next-token NLL) on each domain's held-out chunks.
 */
export interface MethodResult {
  method: string;
  domains: string[];
  /** perplexity[stage][domain], stage 0 = before training, domain 0 = the base domain. */
  perplexity: number[][];
  /** Loss curve: one entry per logged step, with the stage it belongs to. */
  losses: { stage: number; step: number; loss: number; ce: number; kl?: number }[];
  /** Mean wall time of an optimizer step, seconds. */
  stepSeconds: number;
  tokensPerSecond: number;
  peakBytes: number;
  trainSeconds: number;
}

export interface Summary {
  method: string;
  baseBefore: number;
  baseAfter: number;
  /** Perplexity added on the base domain: after minus before. */
  forgetting: number;
  /** after / before on the base domain. */
  forgettingRatio: number;
  /** Mean perplexity over the learned domains at the end. */
  averageFinal: number;
  /** Each learned domain's perplexity right after its own stage. */
  justLearned: number[];
  /** Mean of `justLearned`: how well the method learns each new domain. */
  averageJustLearned: number;
  /**
   * Backward transfer in perplexity: the mean over every domain but the last of (final minus
   * just learned); positive means later domains made it worse.
   */
  backwardTransfer: number;
  stepSeconds: number;
  tokensPerSecond: number;
  peakBytes: number;
}

export function summarize(r: MethodResult): Summary {
  const p = r.perplexity;
  const last = p.length - 1;
  const n = r.domains.length - 1;
  const justLearned = Array.from({ length: n }, (_, j) => p[j + 1][j + 1]);
  const finals = Array.from({ length: n }, (_, j) => p[last][j + 1]);
  const earlier = Array.from({ length: Math.max(0, n - 1) }, (_, j) => p[last][j + 1] - p[j + 1][j + 1]);
  return {
    method: r.method,
    baseBefore: p[0][0],
    baseAfter: p[last][0],
    forgetting: p[last][0] - p[0][0],
    forgettingRatio: p[last][0] / p[0][0],
    averageFinal: finals.reduce((a, b) => a + b, 0) / Math.max(1, n),
    justLearned,
    averageJustLearned: justLearned.reduce((a, b) => a + b, 0) / Math.max(1, n),
    backwardTransfer: earlier.length ? earlier.reduce((a, b) => a + b, 0) / earlier.length : 0,
    stepSeconds: r.stepSeconds,
    tokensPerSecond: r.tokensPerSecond,
    peakBytes: r.peakBytes,
  };
}

function pad(text: string, width: number, left = false): string {
  return left ? text.padEnd(width) : text.padStart(width);
}

function fmt(v: number, digits = 2): string {
  return Number.isFinite(v) ? v.toFixed(digits) : String(v);
}

/** Format a change with its sign always written: +4.20, -0.38. */
export function signed(v: number, digits = 2): string {
  return v >= 0 ? `+${fmt(v, digits)}` : fmt(v, digits);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i], i === 0)).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The perplexity matrix of one method as text. */
export function matrixTable(r: MethodResult): string {
  const header = ['after stage', ...r.domains];
  const rows = r.perplexity.map((row, s) => [s === 0 ? 'before training' : `${s}: ${r.domains[s]}`, ...row.map((v) => fmt(v))]);
  return table(header, rows);
}

export function formatBytes(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** The comparison of every method as text. */
export function summaryTable(summaries: Summary[]): string {
  const header = [
    'method',
    'base before',
    'base after',
    'forgetting',
    'ratio',
    'avg final',
    'just learned',
    'avg learned',
    'BWT',
    'step s',
    'tok/s',
    'peak GPU',
  ];
  const rows = summaries.map((s) => [
    s.method,
    fmt(s.baseBefore),
    fmt(s.baseAfter),
    signed(s.forgetting),
    fmt(s.forgettingRatio),
    fmt(s.averageFinal),
    s.justLearned.map((v) => fmt(v, 1)).join(' / '),
    fmt(s.averageJustLearned),
    fmt(s.backwardTransfer),
    fmt(s.stepSeconds, 3),
    fmt(s.tokensPerSecond, 0),
    formatBytes(s.peakBytes),
  ]);
  return table(header, rows);
}

/** Compute how much less forgetting `other` has than `baseline`, as a fraction of the baseline's. */
export function forgettingReduction(baseline: Summary, other: Summary): number {
  return baseline.forgetting > 0 ? (baseline.forgetting - other.forgetting) / baseline.forgetting : 0;
}
