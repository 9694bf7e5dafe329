import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The shared fixture folder: `<repository>/../shared/fixtures`, where the test machines keep
 * the real model files. The `TEMA_FIXTURES` environment variable overrides it.
 */
export function fixturesDir(): string {
  if (process.env.TEMA_FIXTURES) return process.env.TEMA_FIXTURES;
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '../../../../shared/fixtures');
}

export function fixture(...parts: string[]): string {
  return join(fixturesDir(), ...parts);
}
