/** Where the library's progress and notice lines go; the default writes to stderr. */
export type LogFn = (message: string) => void;

let logFn: LogFn = (message) => {
  if (typeof process !== 'undefined' && process.stderr) process.stderr.write(`${message}\n`);
  else console.error(message);
};

/** Replace the logger (for example with `() => {}` to silence the library). */
export function setLogger(fn: LogFn): void {
  logFn = fn;
}

export function log(message: string): void {
  logFn(message);
}

const noticed = new Set<string>();

/** Log a notice once per process, keyed by the message itself. */
export function logOnce(message: string): void {
  if (noticed.has(message)) return;
  noticed.add(message);
  logFn(message);
}
