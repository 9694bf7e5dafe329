import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './atomic.js';
import { openSafetensors, writeSafetensors } from './safetensors.js';

const PACKAGE = resolve(import.meta.dirname, '..');
const REPO = resolve(PACKAGE, '../..');

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'io-atomic-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('replaces the contents and leaves no temporary file', async () => {
    const path = join(folder, 'plain.bin');
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    await writeFileAtomic(path, [new Uint8Array([4]), new Uint8Array([5, 6])]);
    expect([...(await readFile(path))]).toEqual([4, 5, 6]);
    expect((await readdir(folder)).filter((name) => name.includes('.tmp-'))).toEqual([]);
  });

  it('removes the temporary file when writing fails', async () => {
    const path = join(folder, 'failing.bin');
    await writeFileAtomic(path, new Uint8Array([7, 7]));
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(1000);
      throw new Error('disk gone');
    }
    await expect(writeFileAtomic(path, failing())).rejects.toThrow('disk gone');
    expect([...(await readFile(path))]).toEqual([7, 7]);
    expect((await readdir(folder)).filter((name) => name.startsWith('.failing.bin.tmp-'))).toEqual([]);
  });

  it('keeps the old checkpoint when the writer is killed', async () => {
    const path = join(folder, 'model.safetensors');
    const weights = new Float32Array([0.5, -1.25, 3, 8]);
    await writeSafetensors(path, { w: { dtype: 'F32', shape: [2, 2], data: weights } }, { step: '100' });

    const child = spawn(process.execPath, [join(REPO, 'node_modules/vite-node/vite-node.mjs'), join(PACKAGE, 'test-helpers/kill-during-write.ts'), path], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
    const exited = new Promise<NodeJS.Signals | null>((done) => child.on('exit', (_code, signal) => done(signal)));
    await new Promise<void>((started, failed) => {
      child.stdout.on('data', (data: Buffer) => {
        if (data.toString().includes('writing')) started();
      });
      child.on('exit', (code) => failed(new Error(`writer exited with ${code} before writing: ${stderr}`)));
    });
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    // The killed writer leaves its partial temporary file; the checkpoint itself is untouched.
    const leftovers = (await readdir(folder)).filter((name) => name.startsWith('.model.safetensors.tmp-'));
    expect(leftovers.length).toBe(1);
    expect((await stat(join(folder, leftovers[0]!))).size).toBeGreaterThanOrEqual(8 << 20);

    const file = await openSafetensors(path);
    expect(file.metadata).toEqual({ step: '100' });
    expect((await file.read('w')).data).toEqual(weights);
  });
});
