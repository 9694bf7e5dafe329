import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FormatError } from '@tematrainer/tensor';
import { describe, expect, it } from 'vitest';
import { openGguf } from './gguf.js';
import { ggufLlamaConfig, ggufTokenizerData } from './gguf-llama.js';
import { inspectFile } from './inspect.js';
import { readLlama2cCheckpoint, readLlama2cTokenizer } from './llama2c.js';
import { openSafetensors } from './safetensors.js';
import { type ByteSource, bytesSource } from './source.js';

const FIXTURES = resolve(import.meta.dirname, '../../../../shared/fixtures');

/** Small seeded generator (mulberry32) so that a failing case can be replayed from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Returns a mutated copy of `original`: random byte flips (mostly inside the first `headerBytes`,
 * where the parsers look), runs of 0xff that make huge lengths and counts, changed digits in
 * a text header, or a truncation.
 */
function mutate(original: Uint8Array, headerBytes: number, next: () => number): { bytes: Uint8Array; what: string } {
  const pick = (limit: number) => Math.floor(next() * limit);
  const kind = pick(5);
  if (kind === 0) {
    const length = pick(original.length);
    return { bytes: original.subarray(0, length), what: `truncate to ${length}` };
  }

  const bytes = original.slice();
  const edits: string[] = [];
  const editCount = 1 + pick(4);
  for (let i = 0; i < editCount; i++) {
    const at = next() < 0.85 ? pick(Math.min(headerBytes, bytes.length)) : pick(bytes.length);
    if (kind === 4) {
      // Header edit: change a decimal digit, which in a JSON header moves an offset or a dimension.
      let digit = at;
      while (digit < headerBytes && (bytes[digit]! < 0x30 || bytes[digit]! > 0x39)) digit++;
      if (digit >= Math.min(headerBytes, bytes.length)) continue;
      bytes[digit] = 0x30 + pick(10);
      edits.push(`digit at ${digit} = ${bytes[digit]! - 0x30}`);
    } else if (kind === 1) {
      bytes[at] = pick(256);
      edits.push(`byte ${at} = ${bytes[at]}`);
    } else if (kind === 2) {
      bytes[at]! ^= 1 << pick(8);
      edits.push(`bit flip at ${at}`);
    } else {
      const run = 1 + pick(8);
      bytes.fill(0xff, at, at + run);
      edits.push(`0xff x${run} at ${at}`);
    }
  }
  return { bytes, what: edits.join(', ') };
}

async function loadSafetensors(source: ByteSource): Promise<void> {
  const file = await openSafetensors(source);
  for (const name of file.tensors.keys()) await file.read(name, { as: 'f32' });
}

async function loadGguf(source: ByteSource): Promise<void> {
  const gguf = await openGguf(source);
  ggufLlamaConfig(gguf);
  ggufTokenizerData(gguf);
  for (const name of gguf.tensors.keys()) await gguf.read(name);
}

const CASES: { file: string; headerBytes: number; cases: number; load: (source: ByteSource) => Promise<unknown> }[] = [
  { file: 'stories260K/stories260K.gguf', headerBytes: 14176, cases: 3000, load: loadGguf },
  { file: 'stories260K/stories260K.bin', headerBytes: 28, cases: 500, load: readLlama2cCheckpoint },
  { file: 'stories260K/tok512.bin', headerBytes: 6227, cases: 1000, load: (s) => readLlama2cTokenizer(s, 512) },
  { file: 'stories260K-hf/model.safetensors', headerBytes: 4952, cases: 1000, load: loadSafetensors },
  { file: 'golden/tema_golden.safetensors', headerBytes: 19840, cases: 1000, load: loadSafetensors },
  { file: 'peft-adapter-gpt2-tigrinya/adapter_model.safetensors', headerBytes: 9072, cases: 300, load: loadSafetensors },
];

describe('fuzzed fixtures', () => {
  for (const { file, headerBytes, cases, load } of CASES) {
    it(`${file} loads or raises FormatError`, async () => {
      const original = new Uint8Array(await readFile(join(FIXTURES, file)));
      const next = random(0x5eed ^ original.length);
      let loaded = 0;
      let rejected = 0;

      for (let i = 0; i < cases; i++) {
        const { bytes, what } = mutate(original, headerBytes, next);
        const source = bytesSource(bytes, `case ${i}`);
        try {
          await load(source);
          loaded++;
        } catch (error) {
          if (!(error instanceof FormatError)) {
            throw new Error(`${file}, case ${i} (${what}): expected FormatError, got ${String(error)}`, { cause: error });
          }
          rejected++;
        }
        // The inspector reads the same bytes through its own detection path.
        if (i % 10 === 0) {
          await inspectFile(source).catch((error: unknown) => {
            if (!(error instanceof FormatError)) throw new Error(`${file}, case ${i} (${what}): inspectFile raised ${String(error)}`, { cause: error });
          });
        }
      }

      // Both outcomes occur, so the mutations reach the parser and do not only break it.
      expect(loaded).toBeGreaterThan(0);
      expect(rejected).toBeGreaterThan(0);
    });
  }
});
