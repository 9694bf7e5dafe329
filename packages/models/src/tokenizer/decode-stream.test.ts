import { describe, expect, test } from 'vitest';

import { createDecodeStream } from './decode-stream.js';
import { SentencePieceBpeTokenizer } from './sentencepiece.js';

const byteTokens = Array.from({ length: 256 }, (_, byte) => `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
const pieces = ['▁', 'a', '▁a', 'b'];
const tokenizer = SentencePieceBpeTokenizer.fromVocab({
  tokens: ['<unk>', '<s>', '</s>', ...byteTokens, ...pieces],
  scores: [0, 0, 0, ...byteTokens.map(() => 0), ...pieces.map((_, rank) => -rank)],
  bosId: 1,
  eosId: 2,
  unkId: 0,
});
const spaceA = 259 + 2;
const byteId = (byte: number) => 3 + byte;

describe('createDecodeStream', () => {
  test('holds back partial UTF-8', () => {
    // '日' is E6 97 A5, '🙂' is F0 9F 99 82.
    const ids = [1, spaceA, byteId(0xe6), byteId(0x97), byteId(0xa5), spaceA, byteId(0xf0), byteId(0x9f), byteId(0x99), byteId(0x82), 2];
    const stream = createDecodeStream(tokenizer);
    const outputs = ids.map((id) => stream.push(id));
    expect(outputs).toEqual(['', 'a', '', '', '日', ' a', '', '', '', '🙂', '']);
    expect(stream.flush()).toBe('');
    expect(outputs.join('')).toBe(tokenizer.decode(ids, { skipSpecialTokens: true }));
  });

  test('flush returns an incomplete character', () => {
    const stream = createDecodeStream(tokenizer);
    expect(stream.push(spaceA)).toBe('a');
    expect(stream.push(byteId(0xe6))).toBe('');
    expect(stream.flush()).toBe('\uFFFD');
    expect(stream.flush()).toBe('');
  });

  test('invalid bytes do not stall the stream', () => {
    // A lone continuation byte never completes, so after 4 tokens the stream lets it through.
    const stream = createDecodeStream(tokenizer);
    const outputs = [byteId(0x97), byteId(0x97), byteId(0x97), byteId(0x97)].map((id) => stream.push(id));
    expect(outputs.join('')).toBe('\uFFFD'.repeat(4));
    expect(stream.push(spaceA)).toBe(' a');
  });

  test('context continues a prompt', () => {
    const stream = createDecodeStream(tokenizer, { context: [1, spaceA] });
    expect(stream.push(spaceA)).toBe(' a');
    expect(stream.push(259 + 3)).toBe('b');

    const fromBos = createDecodeStream(tokenizer, { context: [1] });
    expect(fromBos.push(spaceA)).toBe('a');
  });

  test('special tokens when not skipped', () => {
    const stream = createDecodeStream(tokenizer, { skipSpecialTokens: false });
    expect([1, spaceA, 2].map((id) => stream.push(id))).toEqual(['<s>', 'a', '</s>']);
  });
});
