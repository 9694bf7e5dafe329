/** A one-line progress bar on stderr (redrawn in place on a terminal, a line per update elsewhere). */
export class ProgressBar {
  private start = performance.now();
  private lastLine = 0;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly write: (text: string) => void = (t) => process.stderr.write(t),
    /** Seconds between lines when not on a terminal. */
    private readonly interval = 10,
  ) {
    this.tty = typeof process !== 'undefined' && process.stderr?.isTTY === true;
  }

  update(done: number, fields: Record<string, string | number> = {}): void {
    const elapsed = (performance.now() - this.start) / 1000;
    if (!this.tty && done < this.total && elapsed - this.lastLine < this.interval) return;
    this.lastLine = elapsed;
    const width = 24;
    const filled = Math.round((width * done) / Math.max(1, this.total));
    const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
    const left = done > 0 ? (elapsed * (this.total - done)) / done : NaN;
    const extra = Object.entries(fields)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? formatNumber(v) : v}`)
      .join('  ');
    const line = `${this.label} [${bar}] ${done}/${this.total}  ${extra}  ${formatDuration(elapsed)} elapsed, ${formatDuration(left)} left`;
    this.write(this.tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }

  finish(): void {
    if (this.tty) this.write('\n');
  }
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(4);
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m${String(Math.round(seconds - 60 * m)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
