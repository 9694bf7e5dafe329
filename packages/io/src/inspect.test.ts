import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FormatError } from '@tematrainer/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectFile } from './inspect.js';
import { writeTrainerState } from './state.js';

const FIXTURES = resolve(import.meta.dirname, '../../../../shared/fixtures');

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'io-inspect-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('inspectFile', () => {
  it('describes a GGUF file', async () => {
    const text = await inspectFile(join(FIXTURES, 'stories260K/stories260K.gguf'));
    expect(text).toContain('format: GGUF version 3');
    expect(text).toContain('data offset: 14176');
    expect(text).toContain('llama.block_count = 5');
    expect(text).toContain('tensors: 48');
    expect(text).toContain('  blk.4.ffn_down.weight  F32  [64, 172]');
  });

  it('describes a safetensors file', async () => {
    const text = await inspectFile(join(FIXTURES, 'golden/tema_golden.safetensors'));
    expect(text).toContain('format: safetensors');
    expect(text).toContain('metadata: {format: "pt"}');
    expect(text).toContain('  input_ids  I64  [2, 16]');
    expect(text).toContain('  student_logits  F32  [2, 16, 512]');
  });

  it('describes a llama2.c checkpoint and tokenizer', async () => {
    const checkpoint = await inspectFile(join(FIXTURES, 'stories260K/stories260K.bin'));
    expect(checkpoint).toContain('format: llama2.c checkpoint (legacy layout)');
    expect(checkpoint).toContain('  wk  F32  [5, 32, 64]');
    const tokenizer = await inspectFile(join(FIXTURES, 'stories260K/tok512.bin'));
    expect(tokenizer).toContain('format: llama2.c tokenizer');
    expect(tokenizer).toContain('tokens: 512');
  });

  it('describes trainer state', async () => {
    const path = join(folder, 'state.msgpack');
    await writeTrainerState(path, { step: 7, ema: { a: { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) } } });
    const text = await inspectFile(path);
    expect(text).toContain('format: trainer state (msgpack)');
    expect(text).toContain('  step = 7');
    expect(text).toContain('  ema.a  F32  [2, 3]');
  });

  it('rejects an unknown format', async () => {
    const path = join(folder, 'notes.txt');
    await writeFile(path, 'just some text that is no model file\n');
    await expect(inspectFile(path)).rejects.toThrow(FormatError);
    await expect(inspectFile(path)).rejects.toThrow(/notes\.txt: not a recognised format/);
  });
});
