import { readFileSync } from 'node:fs';
import path from 'node:path';

import { ConfigError, FormatError } from '@tematrainer/tensor';
import { describe, expect, it } from 'vitest';

import { ChunkSampler, corpusSplit, loadCorpus, readCorpus, tokenizeCorpus } from './corpus.js';
import { BYTE_OFFSET, byteTokenizer } from './test-tokenizer.js';

const corporaFolder = path.resolve(import.meta.dirname, '../../../../../shared/fixtures/corpora');
const tokenizer = byteTokenizer();

const CR = 0x0d;
const LF = 0x0a;

/** Byte statistics of a corpus file, counted straight from its bytes. */
function rawCounts(name: string): { bytes: Buffer; hasBom: boolean; crlfPairs: number } {
  const bytes = readFileSync(path.join(corporaFolder, name));
  const hasBom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  let crlfPairs = 0;
  for (let i = 0; i + 1 < bytes.length; i++) {
    if (bytes[i] === CR && bytes[i + 1] === LF) {
      crlfPairs++;
    }
  }
  return { bytes, hasBom, crlfPairs };
}

describe('readCorpus', () => {
  it('drops the BOM and converts CRLF in origin_of_species', async () => {
    const { bytes, hasBom, crlfPairs } = rawCounts('origin_of_species.txt');
    expect(hasBom).toBe(true);
    expect(crlfPairs).toBeGreaterThan(20_000);

    const text = await readCorpus(path.join(corporaFolder, 'origin_of_species.txt'));
    expect(text.charCodeAt(0)).not.toBe(0xfeff);
    expect(text.includes('\r')).toBe(false);
    expect(Buffer.byteLength(text, 'utf8')).toBe(bytes.length - 3 - crlfPairs);
  });

  it('converts CRLF in rfc2616', async () => {
    const { bytes, hasBom, crlfPairs } = rawCounts('rfc2616.txt');
    expect(hasBom).toBe(false);
    expect(crlfPairs).toBeGreaterThan(9_000);

    const text = await readCorpus(path.join(corporaFolder, 'rfc2616.txt'));
    expect(text.includes('\r')).toBe(false);
    expect(text.includes('\f')).toBe(true);
    expect(Buffer.byteLength(text, 'utf8')).toBe(bytes.length - crlfPairs);
  });

  it('keeps an LF corpus byte for byte', async () => {
    const { bytes } = rawCounts('tinyshakespeare.txt');
    const text = await readCorpus(path.join(corporaFolder, 'tinyshakespeare.txt'));
    expect(Buffer.from(text, 'utf8').equals(bytes)).toBe(true);
  });
});

describe('corpus protocol', () => {
  const corpora = [
    'tinystories_train_head.txt',
    'tinyshakespeare.txt',
    'federalist_papers.txt',
    'rfc2616.txt',
    'origin_of_species.txt',
  ];

  for (const name of corpora) {
    it(`splits ${name}`, async () => {
      const { bytes, hasBom, crlfPairs } = rawCounts(name);
      // One token per byte after normalisation, plus BOS.
      const tokenCount = bytes.length - (hasBom ? 3 : 0) - crlfPairs + 1;
      const chunkCount = Math.floor(tokenCount / 128);
      const heldOut = Math.max(1, Math.round(chunkCount / 10));

      const split = await loadCorpus(path.join(corporaFolder, name), tokenizer);
      expect(split.train.length).toBe(chunkCount - heldOut);
      expect(split.eval.length).toBe(Math.min(128, heldOut));
      expect(split.train.every((chunk) => chunk.length === 128)).toBe(true);
      expect(split.eval.every((chunk) => chunk.length === 128)).toBe(true);

      // The first chunk is BOS and then the first 127 bytes after the BOM, CR of CRLF left out.
      const expectedBytes: number[] = [];
      for (let i = hasBom ? 3 : 0; expectedBytes.length < 127; i++) {
        if (!(bytes[i] === CR && bytes[i + 1] === LF)) {
          expectedBytes.push(bytes[i]!);
        }
      }
      expect(split.train[0]![0]).toBe(1);
      expect(Array.from(split.train[0]!.subarray(1))).toEqual(expectedBytes.map((byte) => byte + BYTE_OFFSET));
      expect(split.train.some((chunk) => chunk.includes(CR + BYTE_OFFSET))).toBe(false);
    });
  }

  it('evaluates on evenly spread held-out chunks', async () => {
    const text = await readCorpus(path.join(corporaFolder, 'tinyshakespeare.txt'));
    const ids = tokenizeCorpus(text, tokenizer);
    const split = corpusSplit(ids);
    const chunkCount = Math.floor(ids.length / 128);
    const heldOut = Math.round(chunkCount / 10);
    const trainCount = chunkCount - heldOut;
    expect(heldOut).toBeGreaterThan(128);

    for (const i of [0, 1, 64, 127]) {
      const chunkIndex = trainCount + Math.floor((i * heldOut) / 128);
      expect(Array.from(split.eval[i]!)).toEqual(Array.from(ids.subarray(chunkIndex * 128, (chunkIndex + 1) * 128)));
    }
  });
});

describe('corpusSplit', () => {
  const ids = Int32Array.from({ length: 1005 }, (_, i) => i);

  it('holds out the last tenth', () => {
    const split = corpusSplit(ids, { chunkLength: 10 });
    expect(split.train).toHaveLength(90);
    expect(split.eval.map((chunk) => chunk[0])).toEqual([900, 910, 920, 930, 940, 950, 960, 970, 980, 990]);
    expect(Array.from(split.train[89]!)).toEqual([890, 891, 892, 893, 894, 895, 896, 897, 898, 899]);
  });

  it('spreads capped eval chunks evenly', () => {
    const split = corpusSplit(ids, { chunkLength: 10, maxEvalChunks: 4 });
    // Held-out indices floor(i * 10 / 4): 0, 2, 5, 7.
    expect(split.eval.map((chunk) => chunk[0])).toEqual([900, 920, 950, 970]);
  });

  it('holds out at least one chunk', () => {
    const split = corpusSplit(ids.subarray(0, 25), { chunkLength: 10 });
    expect(split.train.map((chunk) => chunk[0])).toEqual([0]);
    expect(split.eval.map((chunk) => chunk[0])).toEqual([10]);
  });

  it('rejects a corpus of one chunk', () => {
    expect(() => corpusSplit(ids.subarray(0, 19), { chunkLength: 10, source: 'tiny.txt' })).toThrow(FormatError);
    expect(() => corpusSplit(ids.subarray(0, 19), { chunkLength: 10, source: 'tiny.txt' })).toThrow(/^tiny\.txt: 19 tokens/);
  });

  it('rejects a bad chunk length', () => {
    expect(() => corpusSplit(ids, { chunkLength: 0 })).toThrow(ConfigError);
  });
});

describe('ChunkSampler', () => {
  const chunks = Array.from({ length: 11 }, (_, i) => Int32Array.from([i, i + 100, i + 200]));

  it('labels chunks with their own ids', () => {
    const batch = new ChunkSampler(chunks, 2, 0).next();
    expect(batch.seqLen).toBe(3);
    expect(batch.batchSize).toBe(2);
    expect(Array.from(batch.labels)).toEqual(Array.from(batch.inputIds));
    expect(Array.from(batch.attentionMask)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('draws the same order for the same seed', () => {
    const drawn = (seed: number) => {
      const sampler = new ChunkSampler(chunks, 4, seed);
      return Array.from({ length: 6 }, () => Array.from(sampler.next().inputIds));
    };
    expect(drawn(3)).toEqual(drawn(3));
    expect(drawn(3)).not.toEqual(drawn(4));
  });

  it('covers every chunk once per epoch', () => {
    const sampler = new ChunkSampler(chunks, 4, 8);
    const firsts = [sampler.next(), sampler.next(), sampler.next()].flatMap((batch) =>
      Array.from({ length: batch.batchSize }, (_, row) => batch.inputIds[row * batch.seqLen]!),
    );
    expect(firsts.sort((x, y) => x - y)).toEqual(Array.from({ length: 11 }, (_, i) => i));
  });

  it('resumes from its state', () => {
    const original = new ChunkSampler(chunks, 4, 21);
    for (let k = 0; k < 4; k++) {
      original.next();
    }
    const saved = JSON.parse(JSON.stringify(original.state));
    const expected = Array.from({ length: 5 }, () => original.next());

    const resumed = new ChunkSampler(chunks, 4, 0);
    resumed.restore(saved);
    expect(Array.from({ length: 5 }, () => resumed.next())).toEqual(expected);
  });
});
