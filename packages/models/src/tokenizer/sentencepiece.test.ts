import { ConfigError, FormatError, TemaError } from '@tematrainer/tensor';
import { describe, expect, test } from 'vitest';

import { SentencePieceBpeTokenizer, TokenType, type SentencePieceVocab } from './sentencepiece.js';

const byteTokens = Array.from({ length: 256 }, (_, byte) => `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);

/** Builds a llama-style vocabulary: <unk>, <s>, </s>, 256 byte tokens, then `pieces` with scores -rank. */
function vocab(pieces: string[], overrides: Partial<SentencePieceVocab> = {}): SentencePieceVocab {
  return {
    tokens: ['<unk>', '<s>', '</s>', ...byteTokens, ...pieces],
    scores: [0, 0, 0, ...byteTokens.map(() => 0), ...pieces.map((_, rank) => -rank)],
    bosId: 1,
    eosId: 2,
    unkId: 0,
    ...overrides,
  };
}

const FIRST_PIECE = 259;

describe('SentencePieceBpeTokenizer encode', () => {
  test('merges by score', () => {
    // Pieces come in rank order, so the earlier of 'ab' and 'bc' wins the overlap in "abc".
    const bcFirst = SentencePieceBpeTokenizer.fromVocab(vocab(['bc', 'ab', 'a', 'b', 'c'], { addSpacePrefix: false }));
    expect(bcFirst.encode('abc', { addBos: false })).toEqual([FIRST_PIECE + 2, FIRST_PIECE]);

    const abFirst = SentencePieceBpeTokenizer.fromVocab(vocab(['ab', 'bc', 'a', 'b', 'c'], { addSpacePrefix: false }));
    expect(abFirst.encode('abc', { addBos: false })).toEqual([FIRST_PIECE, FIRST_PIECE + 4]);
  });

  test('merges a merged pair again', () => {
    const tokenizer = SentencePieceBpeTokenizer.fromVocab(vocab(['bc', 'abc', 'a', 'b', 'c'], { addSpacePrefix: false }));
    expect(tokenizer.encode('abcab', { addBos: false })).toEqual([FIRST_PIECE + 1, FIRST_PIECE + 2, FIRST_PIECE + 3]);
  });

  test('equal scores merge leftmost first', () => {
    const tokens = ['<unk>', '<s>', '</s>', 'a', 'aa'];
    const tokenizer = SentencePieceBpeTokenizer.fromVocab({
      tokens,
      scores: [0, 0, 0, -1, -1],
      bosId: 1,
      eosId: 2,
      unkId: 0,
      addSpacePrefix: false,
    });
    expect(tokenizer.encode('aaa', { addBos: false })).toEqual([4, 3]);
    expect(tokenizer.encode('aaaaa', { addBos: false })).toEqual([4, 4, 3]);
  });

  test('▁ and space are the same', () => {
    const withBar = SentencePieceBpeTokenizer.fromVocab(vocab(['▁', 'a', '▁a']));
    const withSpace = SentencePieceBpeTokenizer.fromVocab(vocab([' ', 'a', ' a']));
    expect(withBar.encode('a a')).toEqual([1, FIRST_PIECE + 2, FIRST_PIECE + 2]);
    expect(withSpace.encode('a a')).toEqual(withBar.encode('a a'));
    expect(withBar.decode(withBar.encode('a a'))).toBe('<s>a a');
  });

  test('byte fallback uses the <0xNN> tokens', () => {
    const tokenizer = SentencePieceBpeTokenizer.fromVocab(vocab([' ', 'é']));
    // 'é' is in the vocabulary; '✓' is E2 9C 93 in UTF-8.
    expect(tokenizer.encode('é✓', { addBos: false })).toEqual([FIRST_PIECE, FIRST_PIECE + 1, 3 + 0xe2, 3 + 0x9c, 3 + 0x93]);
  });

  test('unknown token without byte tokens', () => {
    const tokenizer = SentencePieceBpeTokenizer.fromVocab({
      tokens: ['<unk>', '<s>', '</s>', ' ', 'a'],
      scores: [0, 0, 0, 0, 0],
      bosId: 1,
      eosId: 2,
      unkId: 0,
    });
    expect(tokenizer.encode('aé', { addBos: false })).toEqual([3, 4, 0, 0]);
  });

  test('control tokens never come from text', () => {
    const tokenizer = SentencePieceBpeTokenizer.fromVocab(vocab(['<s', '<', 's', '>'], { addSpacePrefix: false }));
    expect(tokenizer.encode('<s>', { addBos: false })).toEqual([FIRST_PIECE, FIRST_PIECE + 3]);
  });

  test('empty text has no space prefix', () => {
    const tokenizer = SentencePieceBpeTokenizer.fromVocab(vocab([' ']));
    expect(tokenizer.encode('')).toEqual([1]);
    expect(tokenizer.encode('', { addBos: false, addEos: true })).toEqual([2]);
  });

  test('token types from GGUF', () => {
    // Token 3 looks like a byte token but is typed user-defined, so text can produce it.
    const tokenizer = SentencePieceBpeTokenizer.fromVocab({
      tokens: ['<unk>', '<s>', '</s>', '<0x41>', '<', '0', 'x', '4', '1', '>'],
      scores: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      tokenTypes: [TokenType.unknown, TokenType.control, TokenType.control, TokenType.userDefined, 1, 1, 1, 1, 1, 1],
      bosId: 1,
      eosId: 2,
      unkId: 0,
      addSpacePrefix: false,
    });
    expect(tokenizer.encode('<0x41>', { addBos: false })).toEqual([4, 5, 6, 7, 8, 9]);
    expect(tokenizer.decode([3])).toBe('<0x41>');
  });
});

describe('SentencePieceBpeTokenizer decode', () => {
  const tokenizer = SentencePieceBpeTokenizer.fromVocab(vocab([' ', 'a', ' a', 'b']));
  const spaceA = FIRST_PIECE + 2;

  test('strips the dummy prefix after BOS', () => {
    expect(tokenizer.decodeToken(spaceA, 1)).toBe('a');
    expect(tokenizer.decodeToken(spaceA, spaceA)).toBe(' a');
    expect(tokenizer.decodeToken(spaceA)).toBe('a');
    expect(tokenizer.decode([1, spaceA, spaceA, 2])).toBe('<s>a a</s>');
    expect(tokenizer.decode([1, spaceA, spaceA, 2], { skipSpecialTokens: true })).toBe('a a');
  });

  test('joins byte tokens into characters', () => {
    const check = [3 + 0xe2, 3 + 0x9c, 3 + 0x93];
    expect(tokenizer.decode([spaceA, ...check])).toBe('a✓');
    expect(tokenizer.decodeToken(check[0]!, spaceA)).toBe('\uFFFD');
    expect(Array.from(tokenizer.tokenBytes(check[1]!, check[0]))).toEqual([0x9c]);
  });

  test('keeps the prefix without addSpacePrefix', () => {
    const noPrefix = SentencePieceBpeTokenizer.fromVocab(vocab([' ', 'a', ' a'], { addSpacePrefix: false }));
    expect(noPrefix.encode(' a a', { addBos: false })).toEqual([spaceA, spaceA]);
    expect(noPrefix.decode(noPrefix.encode(' a a'), { skipSpecialTokens: true })).toBe(' a a');
  });

  test('rejects ids outside the vocabulary', () => {
    expect(() => tokenizer.decode([1, 9999])).toThrow(TemaError);
    expect(() => tokenizer.decode([1, 9999])).toThrow('token id 9999 is outside the vocabulary (0..262)');
    expect(() => tokenizer.decodeToken(-1)).toThrow(TemaError);
  });
});

describe('SentencePieceBpeTokenizer construction', () => {
  test('rejects mismatched scores', () => {
    const bad = { ...vocab(['a']), scores: [0] };
    expect(() => SentencePieceBpeTokenizer.fromVocab(bad)).toThrow(ConfigError);
    expect(() => SentencePieceBpeTokenizer.fromVocab(bad)).toThrow('260 tokens but 1 scores');
  });

  test('rejects special ids outside the vocabulary', () => {
    expect(() => SentencePieceBpeTokenizer.fromVocab(vocab(['a'], { eosId: 260 }))).toThrow('eosId is 260, expected a token id in 0..259 or null');
  });

  test('rejects a malformed byte token', () => {
    const tokenTypes = [2, 3, 3, ...byteTokens.map(() => TokenType.byte), TokenType.byte];
    expect(() => SentencePieceBpeTokenizer.fromVocab(vocab(['x'], { tokenTypes }))).toThrow('token 259 "x" has the byte type');
  });

  test('fromGguf rejects other tokenizer models', () => {
    const data = { model: 'gpt2', tokens: ['a'], scores: [0], tokenTypes: [1] };
    expect(() => SentencePieceBpeTokenizer.fromGguf(data)).toThrow(FormatError);
    expect(() => SentencePieceBpeTokenizer.fromGguf(data)).toThrow('tokenizer.ggml.model is "gpt2", expected "llama"');
  });

  test('fromGguf drops an out-of-range padding id', () => {
    const { tokens, scores } = vocab(['a']);
    const tokenizer = SentencePieceBpeTokenizer.fromGguf({ model: 'llama', tokens, scores, bosId: 1, eosId: 2, unkId: 0, padId: 0xffffffff });
    expect(tokenizer.padId).toBeNull();
    expect(tokenizer.addBos).toBe(true);
    expect(tokenizer.addSpacePrefix).toBe(true);
  });

  test('encode without a BOS id', () => {
    const tokenizer = SentencePieceBpeTokenizer.fromVocab(vocab(['a'], { bosId: null }));
    expect(() => tokenizer.encode('a')).toThrow('has no BOS token id');
    expect(tokenizer.encode('a', { addBos: false })).toEqual([3 + 0x20, FIRST_PIECE]);
  });
});
