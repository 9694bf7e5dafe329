import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from './commands/index.js';
import { main } from './main.js';

const cliRoot = resolve(import.meta.dirname, '..');
const fixtures = resolve(cliRoot, '../../../shared/fixtures');
const packageVersion = (JSON.parse(readFileSync(resolve(cliRoot, 'package.json'), 'utf8')) as { version: string }).version;

/** Runs `main` and returns its exit code and everything it wrote. */
async function runMain(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

describe('tema main', () => {
  it('--version prints the package version', async () => {
    const r = await runMain('--version');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${packageVersion}\n`);
    expect(r.stderr).toBe('');
  });

  it('--help lists every command once', async () => {
    const r = await runMain('--help');
    expect(r.code).toBe(0);
    for (const command of COMMANDS) {
      const lines = r.stdout.split('\n').filter((l) => l.trimStart().startsWith(`${command.name} `));
      expect(lines, command.name).toHaveLength(1);
      expect(lines[0]).toContain(command.summary);
    }
  });

  it('unknown command exits 2 with usage', async () => {
    const r = await runMain('frobnicate');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')[0]).toBe('error: unknown command: frobnicate');
    expect(r.stderr).toContain('usage: tema <command>');
  });

  it('unknown option exits 2', async () => {
    const r = await runMain('--frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('error: unknown option: --frobnicate');
  });

  it('no arguments exits 2', async () => {
    const r = await runMain();
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('error: no command given');
  });

  it('command --help prints its usage', async () => {
    const r = await runMain('inspect', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('usage: tema inspect FILE');
  });
});

describe('tema inspect', () => {
  it('prints the GGUF of stories260K', async () => {
    const file = resolve(fixtures, 'stories260K/stories260K.gguf');
    const r = await runMain('inspect', file);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`${file} (1185376 bytes)`);
    expect(lines[1]).toBe('format: GGUF version 3');
    expect(r.stdout).toContain('  general.architecture = "llama"');
  });

  it('non-model file exits 2 with one line', async () => {
    const file = resolve(cliRoot, 'package.json');
    const r = await runMain('inspect', file);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.endsWith('\n')).toBe(true);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: .*package\.json: not a recognised format/);
  });

  it('missing file exits 1', async () => {
    const r = await runMain('inspect', resolve(cliRoot, 'no-such-file.gguf'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot read .*no-such-file\.gguf: ENOENT/);
  });

  it('wrong argument count exits 2', async () => {
    const r = await runMain('inspect', 'a', 'b');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('error: inspect takes one FILE, got 2 arguments');
    expect(r.stderr).toContain('usage: tema inspect FILE');
  });
});

describe('tema device', () => {
  it('prints adapter, features and limits', async () => {
    const r = await runMain('device');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^adapter: \S/);
    expect(r.stdout).toMatch(/\nruntime: node-webgpu\n/);
    expect(r.stdout).toMatch(/\nsoftware: (yes|no)\n/);
    expect(r.stdout).toMatch(/\nlimits:\n/);
    const limit = /\n {2}maxStorageBufferBindingSize +(\d+)\n/.exec(r.stdout);
    expect(limit).not.toBeNull();
    expect(Number(limit![1])).toBeGreaterThanOrEqual(134217728);
  });

  it('rejects arguments', async () => {
    const r = await runMain('device', 'extra');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('error: device takes no arguments, got: extra');
  });
});

const bin = resolve(cliRoot, 'bin/tema.js');
const built = existsSync(resolve(cliRoot, 'dist/main.js'));

describe('tema binary', () => {
  it.skipIf(!built)('node bin/tema.js --version (needs `npm run build`)', () => {
    const r = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${packageVersion}\n`);
  });

  it.skipIf(!built)('node bin/tema.js frob exits 2 (needs `npm run build`)', () => {
    const r = spawnSync(process.execPath, [bin, 'frob'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('error: unknown command: frob');
  });
});
