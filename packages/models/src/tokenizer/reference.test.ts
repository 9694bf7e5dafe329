import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { ggufTokenizerData, openGguf, readLlama2cTokenizer } from '@tematrainer/io';
import { describe, expect, test } from 'vitest';

import { createDecodeStream } from './decode-stream.js';
import { loadHfTokenizer } from './hf.js';
import { SentencePieceBpeTokenizer } from './sentencepiece.js';

const fixtures = path.resolve(import.meta.dirname, '../../../../../shared/fixtures');
const stories = path.join(fixtures, 'stories260K');

const tok512 = await readLlama2cTokenizer(path.join(stories, 'tok512.bin'), 512);
const llama2c = SentencePieceBpeTokenizer.fromLlama2c(tok512);
const gguf = SentencePieceBpeTokenizer.fromGguf(ggufTokenizerData(await openGguf(path.join(stories, 'stories260K.gguf'))));
const hf = await loadHfTokenizer(path.join(fixtures, 'stories260K-hf'));
const forms = [
  ['tok512.bin', llama2c],
  ['stories260K.gguf', gguf],
  ['tokenizer.json', hf],
] as const;

interface ReferenceCase {
  text: string;
  token_ids: number[];
}
const referenceCases = (
  JSON.parse(fs.readFileSync(path.join(stories, 'reference_logits.json'), 'utf8')) as { cases: ReferenceCase[] }
).cases;

describe('stories260K SentencePiece tokenizers', () => {
  test('tok512.bin header and special tokens', () => {
    expect(tok512.maxTokenLength).toBe(7);
    expect(tok512.tokens.slice(0, 4)).toEqual(['<unk>', '\n<s>\n', '\n</s>\n', '<0x00>']);
    expect(llama2c.idToToken(1)).toBe('<s>');
    expect(llama2c.idToToken(259)).toBe(' t');
  });

  test('GGUF vocabulary matches tok512.bin', () => {
    expect(gguf.vocabSize).toBe(512);
    expect([gguf.bosId, gguf.eosId, gguf.padId]).toEqual([1, 2, null]);
    for (let id = 3; id < 512; id++) expect(gguf.idToToken(id)).toBe(llama2c.idToToken(id));
  });

  test.each(forms)('%s encodes "Once upon a time"', (_name, tokenizer) => {
    expect(tokenizer.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });

  test.each(forms)('%s encodes the needle sentence', (_name, tokenizer) => {
    const needle = referenceCases.find((c) => c.text.startsWith('One day'))!;
    expect(needle.text).toBe('One day, a little girl named Lily found a needle in her room.');
    expect(needle.token_ids.length).toBe(24);
    expect(tokenizer.encode(needle.text)).toEqual(needle.token_ids);
  });

  test.each(forms)('%s special ids', (_name, tokenizer) => {
    expect(tokenizer.vocabSize).toBe(512);
    expect(tokenizer.bosId).toBe(1);
    expect(tokenizer.eosId).toBe(2);
    expect(tokenizer.encode('', { addBos: false })).toEqual([]);
    expect(tokenizer.encode('')).toEqual([1]);
    expect(tokenizer.encode('Once', { addBos: false, addEos: true })).toEqual([403, 2]);
  });
});

/** llama2.c's merge loop as run.c writes it: rescan all pairs, merge the best, repeat. */
function naiveLlama2cMerge(tokenizer: SentencePieceBpeTokenizer, ids: number[]): number[] {
  const tokenIds = new Map<string, number>();
  for (let id = 259; id < tokenizer.vocabSize; id++) tokenIds.set(tokenizer.idToToken(id), id);
  const scores = tok512.scores;
  const merged = [...ids];
  for (;;) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIndex = -1;
    for (let i = 0; i + 1 < merged.length; i++) {
      const id = tokenIds.get(tokenizer.idToToken(merged[i]!) + tokenizer.idToToken(merged[i + 1]!));
      if (id !== undefined && scores[id]! > bestScore) {
        bestScore = scores[id]!;
        bestId = id;
        bestIndex = i;
      }
    }
    if (bestIndex === -1) return merged;
    merged.splice(bestIndex, 2, bestId);
  }
}

test('heap merge equals the llama2.c loop', () => {
  const text = fs.readFileSync(path.join(fixtures, 'corpora/tinyshakespeare.txt'), 'utf8').slice(0, 1500) + ' ✓ 日本';
  const ids = llama2c.encode(text, { addBos: false });

  // One symbol per character, or per byte for characters outside the vocabulary.
  const symbols: number[] = [];
  for (const char of ' ' + text) {
    const piece = [...Array(512).keys()].find((id) => id >= 259 && llama2c.idToToken(id) === char);
    if (piece !== undefined) symbols.push(piece);
    else for (const byte of Buffer.from(char, 'utf8')) symbols.push(byte + 3);
  }
  expect(ids).toEqual(naiveLlama2cMerge(llama2c, symbols));
  expect(ids.length).toBeGreaterThan(400);
});

describe('agreement of the three forms', () => {
  const lines = fs
    .readFileSync(path.join(fixtures, 'corpora/tinystories_train_head.txt'), 'utf8')
    .split('\n')
    .slice(0, 20);
  const nonAscii = [
    'héllo wörld ✓ 日本語 🙂',
    'Lily said, “Be careful!” — and smiled…',
    '  two leading spaces, a tab\tand a newline\nhere ',
    'Ünïcödé at the start',
  ];
  const texts = [...lines, ...nonAscii];

  test('texts include byte fallback', () => {
    expect(lines.filter((line) => line.length > 0).length).toBeGreaterThan(5);
    const byteIds = llama2c.encode(nonAscii[0]!).filter((id) => id >= 3 && id <= 258);
    expect(byteIds.length).toBeGreaterThan(10);
  });

  test.each(texts.map((text, i) => [i, text] as const))('text %i encodes alike', (_i, text) => {
    const expected = llama2c.encode(text);
    expect(gguf.encode(text)).toEqual(expected);
    expect(hf.encode(text)).toEqual(expected);
  });

  test('whole corpus encodes alike', () => {
    const corpus = fs.readFileSync(path.join(fixtures, 'corpora/tinystories_train_head.txt'), 'utf8');
    const expected = llama2c.encode(corpus);
    expect(expected.length).toBeGreaterThan(100_000);
    expect(hf.encode(corpus)).toEqual(expected);
    expect(llama2c.decode(expected, { skipSpecialTokens: true })).toBe(corpus);
  });

  test.each(texts.map((text, i) => [i, text] as const))('text %i round-trips', (_i, text) => {
    for (const [, tokenizer] of forms) {
      expect(tokenizer.decode(tokenizer.encode(text), { skipSpecialTokens: true })).toBe(text);
      expect(tokenizer.decode(tokenizer.encode(text, { addBos: false }))).toBe(text);
    }
  });
});

describe('llama2.c decoding of the 200-step greedy run', () => {
  // The ids of karpathy/llama2.c test_all.py's run (`-t 0.0 -n 200`); its expected stdout is the text.
  const ids = fs
    .readFileSync(path.join(stories, 'REFERENCE.md'), 'utf8')
    .split('BOS first; 200 ids total incl. BOS) are:')[1]!
    .split('```')[1]!
    .split(',')
    .map((id) => Number(id.trim()));

  // The list contains BOS and then 200 generated ids: the published text needs all 201, because
  // it ends with the last id, " she".
  test('published ids parse', () => {
    expect(ids.length).toBe(201);
    expect(ids.at(-1)).toBe(358);
    expect(ids.slice(0, 5)).toEqual([1, 403, 407, 261, 378]);
  });

  test.each(forms)('%s decodeToken reproduces the text', (_name, tokenizer) => {
    let text = '';
    for (let i = 1; i < ids.length; i++) text += tokenizer.decodeToken(ids[i]!, ids[i - 1]);

    const bytes = Buffer.from(text, 'utf8');
    expect(bytes.length).toBe(464);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe('beeb5cb46785efee81a8545300b31e396b595e5ce6f3b77db201545501981d14');
    expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe(text);
  });

  test.each(forms)('%s decode stream reproduces the text', (_name, tokenizer) => {
    const stream = createDecodeStream(tokenizer);
    let text = '';
    for (const id of ids) text += stream.push(id);
    text += stream.flush();

    const bytes = Buffer.from(text, 'utf8');
    expect(bytes.length).toBe(464);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe('beeb5cb46785efee81a8545300b31e396b595e5ce6f3b77db201545501981d14');
  });
});
