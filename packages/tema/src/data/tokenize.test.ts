import { ConfigError } from '@tematrainer/tensor';
import { describe, expect, it } from 'vitest';

import { byteIds, byteTokenizer } from './test-tokenizer.js';
import { tokenizeDataset, tokenizeExample } from './tokenize.js';

const BOS = 1;
const EOS = 2;
const tokenizer = byteTokenizer();

describe('tokenizeExample', () => {
  it('labels every text token', () => {
    const result = tokenizeExample({ text: 'abc' }, tokenizer, { maxLength: 64 });
    const expected = [BOS, ...byteIds('abc'), EOS];
    expect(result.inputIds).toEqual(expected);
    expect(result.labels).toEqual(expected);
  });

  it('masks the prompt with completion-only loss', () => {
    const result = tokenizeExample({ prompt: 'Q:', completion: 'A' }, tokenizer, { maxLength: 64 });
    expect(result.inputIds).toEqual([BOS, ...byteIds('Q:A'), EOS]);
    expect(result.labels).toEqual([-100, -100, -100, ...byteIds('A'), EOS]);
  });

  it('labels the prompt without completion-only loss', () => {
    const result = tokenizeExample({ prompt: 'Q:', completion: 'A' }, tokenizer, {
      maxLength: 64,
      completionOnlyLoss: false,
    });
    expect(result.labels).toEqual([BOS, ...byteIds('Q:A'), EOS]);
  });

  it('renders messages through the chat template', () => {
    const messages = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Yo' },
    ];
    const result = tokenizeExample({ messages }, tokenizer, { maxLength: 64 });
    const expected = byteIds('<|user|>Hi\n<|assistant|>Yo\n');
    expect(result.inputIds).toEqual(expected);
    expect(result.labels).toEqual(expected);
  });

  it('masks the conversational prompt', () => {
    const example = {
      prompt: [{ role: 'user', content: 'Hi' }],
      completion: [{ role: 'assistant', content: 'Yo' }],
    };
    const result = tokenizeExample(example, tokenizer, { maxLength: 64 });
    const promptIds = byteIds('<|user|>Hi\n<|assistant|>');
    expect(result.inputIds).toEqual([...promptIds, ...byteIds('Yo\n')]);
    expect(result.labels).toEqual([...promptIds.map(() => -100), ...byteIds('Yo\n')]);
  });

  it('leaves BOS to the tokenizer', () => {
    // Like Qwen2's tokenizer: no BOS token, EOS only on request.
    const noBos = {
      ...tokenizer,
      bosId: null,
      encode: (text: string, options: { addEos?: boolean } = {}) =>
        tokenizer.encode(text, { addBos: false, addEos: options.addEos ?? false }),
    };
    const result = tokenizeExample({ prompt: 'Q:', completion: 'A' }, noBos, { maxLength: 64 });
    expect(result.inputIds).toEqual([...byteIds('Q:A'), EOS]);
    expect(result.labels).toEqual([-100, -100, ...byteIds('A'), EOS]);
  });

  it('rejects chat data without a chat template', () => {
    const plain = byteTokenizer({ chatTemplate: false });
    expect(() => tokenizeExample({ messages: [{ role: 'user', content: 'Hi' }] }, plain, { maxLength: 8 })).toThrow(
      ConfigError,
    );
    expect(() => tokenizeExample({ messages: [{ role: 'user', content: 'Hi' }] }, plain, { maxLength: 8 })).toThrow(
      /no chat template/,
    );
  });

  it('truncates to max_length, labels included', () => {
    const result = tokenizeExample({ prompt: 'abcd', completion: 'efgh' }, tokenizer, { maxLength: 6 });
    expect(result.inputIds).toEqual([BOS, ...byteIds('abcde')]);
    expect(result.labels).toEqual([-100, -100, -100, -100, -100, ...byteIds('e')]);
  });

  it('rejects a non-positive max_length', () => {
    expect(() => tokenizeExample({ text: 'a' }, tokenizer, { maxLength: 0 })).toThrow(ConfigError);
  });
});

describe('tokenizeDataset', () => {
  it('logs the truncation notice once and counts all', () => {
    const messages: string[] = [];
    const examples = [{ text: 'short' }, { text: 'a much longer text' }, { text: 'x' }, { text: 'another long one' }];
    const result = tokenizeDataset(examples, tokenizer, { maxLength: 8, logger: (message) => messages.push(message) });

    expect(result.truncated).toBe(2);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toBe(
      'a text example has 20 tokens, more than max_length 8: keeping its first 8 tokens; further truncations are counted, not logged',
    );
    expect(result.examples.map((example) => example.inputIds.length)).toEqual([7, 8, 3, 8]);
  });

  it('logs nothing when nothing is truncated', () => {
    const messages: string[] = [];
    const result = tokenizeDataset([{ text: 'ab' }], tokenizer, { maxLength: 8, logger: (message) => messages.push(message) });
    expect(result.truncated).toBe(0);
    expect(messages).toEqual([]);
  });
});
