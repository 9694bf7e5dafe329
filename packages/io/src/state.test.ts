import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormatError } from '@tematrainer/tensor';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeTrainerState, encodeTrainerState, readTrainerState, writeTrainerState } from './state.js';

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'io-state-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('trainer state', () => {
  it('round-trips tensors and plain fields', async () => {
    const state = {
      step: 1200,
      epoch: 2,
      dataCursor: { file: 'train.jsonl', line: 5123, offset: 2 ** 40 },
      rng: { seed: 1234n, counter: 99 },
      config: { lr: 1e-4, ema_decay: 0.999, targets: ['q_proj', 'v_proj'], resume: null, flag: true },
      optimizer: {
        m: { dtype: 'F32', shape: [2, 2], data: new Float32Array([0.1, -0.2, 3, 4e-9]) },
        steps: { dtype: 'I64', shape: [1], data: new BigInt64Array([2n ** 50n]) },
        half: { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
      },
      ema: [{ dtype: 'BF16', shape: [1], data: new Uint16Array([0x3f80]) }, { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) }],
      blob: new Uint8Array([9, 8, 7]),
    };
    const path = join(folder, 'state.msgpack');
    await writeTrainerState(path, state);
    const read = await readTrainerState(path);

    expect(read['step']).toBe(1200);
    expect(read['dataCursor']).toEqual(state.dataCursor);
    expect(read['config']).toEqual(state.config);
    expect((read['rng'] as { seed: unknown }).seed).toBe(1234n);
    const optimizer = read['optimizer'] as Record<string, { dtype: string; shape: number[]; data: unknown }>;
    expect(optimizer['m']!.data).toBeInstanceOf(Float32Array);
    expect(optimizer['m']).toEqual(state.optimizer.m);
    expect(optimizer['steps']).toEqual(state.optimizer.steps);
    expect(optimizer['half']).toEqual(state.optimizer.half);
    expect(read['ema']).toEqual(state.ema);
    expect([...(read['blob'] as Uint8Array)]).toEqual([9, 8, 7]);
  });

  it('stores bare typed arrays as 1-D tensors', () => {
    const bytes = encodeTrainerState({ moments: new Float32Array([1, 2, 3]) });
    expect(decodeTrainerState(bytes, 'mem')).toEqual({ moments: { dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) } });
  });

  it('stores tensors as little-endian bytes', () => {
    const bytes = encodeTrainerState({ t: { dtype: 'I32', shape: [1], data: new Int32Array([0x01020304]) } });
    const raw = new Packr({ useRecords: false, mapsAsObjects: true }).unpack(bytes) as { state: { t: { data: Uint8Array } } };
    expect([...raw.state.t.data]).toEqual([4, 3, 2, 1]);
  });

  it('rejects files that are not trainer state', async () => {
    const path = join(folder, 'other.msgpack');
    await writeFile(path, new Packr().pack({ hello: 1 }));
    await expect(readTrainerState(path)).rejects.toThrow(/other\.msgpack: not a trainer state file/);

    const bad = encodeTrainerState({ t: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    await writeFile(path, bad.subarray(0, bad.length - 5));
    await expect(readTrainerState(path)).rejects.toThrow(FormatError);
  });

  it('rejects a tensor whose bytes do not match its shape', () => {
    const raw = new Packr({ useRecords: false }).pack({ format: 'tematrainer-state', version: 1, state: { t: { dtype: 'F32', shape: [3], data: new Uint8Array(8) } } });
    expect(() => decodeTrainerState(raw, 'short.msgpack')).toThrow(/short\.msgpack: state\.t has shape \[3\] of F32 \(12 bytes\), but holds 8 bytes/);
  });

  it('writes the file atomically', async () => {
    const path = join(folder, 'atomic.msgpack');
    await writeTrainerState(path, { step: 1 });
    await writeTrainerState(path, { step: 2 });
    expect((await readTrainerState(path))['step']).toBe(2);
    expect((await readFile(path)).length).toBeGreaterThan(0);
  });
});
