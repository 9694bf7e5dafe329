import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ConfigError, FormatError } from '@tematrainer/tensor';
import { afterAll, describe, expect, test } from 'vitest';

import { loadHfTokenizer } from './hf.js';
import { SentencePieceBpeTokenizer } from './sentencepiece.js';

const fixtures = path.resolve(import.meta.dirname, '../../../../../shared/fixtures');
const storiesHf = path.join(fixtures, 'stories260K-hf');

const temporaryRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tokenizer-test-'));
afterAll(() => fs.rmSync(temporaryRoot, { recursive: true, force: true }));

/** Makes a model folder with stories260K's tokenizer.json and the given extra files. */
function modelFolder(name: string, files: Record<string, string>, withTokenizerJson = true): string {
  const folder = path.join(temporaryRoot, name);
  fs.mkdirSync(folder);
  if (withTokenizerJson) fs.copyFileSync(path.join(storiesHf, 'tokenizer.json'), path.join(folder, 'tokenizer.json'));
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(folder, file), text);
  return folder;
}

// The Llama 2 chat format without the system-prompt branch.
const llama2Template =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
  "{% else %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";

const chatMlTemplate =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const chat = [
  { role: 'user', content: 'Tell me a story.' },
  { role: 'assistant', content: 'Once upon a time, there was a cat.' },
];

describe('loadHfTokenizer', () => {
  test('stories260K special tokens', async () => {
    const tokenizer = await loadHfTokenizer(storiesHf);
    expect(tokenizer.vocabSize).toBe(512);
    expect([tokenizer.bosId, tokenizer.eosId, tokenizer.unkId, tokenizer.padId]).toEqual([1, 2, 0, null]);
    expect(tokenizer.addBos).toBe(true);
    expect(tokenizer.addEos).toBe(false);
    expect(tokenizer.tokenToId('▁Once')).toBe(403);
  });

  test('decodeToken continues the previous token', async () => {
    const tokenizer = await loadHfTokenizer(storiesHf);
    expect(tokenizer.decodeToken(403, 1)).toBe('Once');
    expect(tokenizer.decodeToken(407, 403)).toBe(' upon');
    expect(tokenizer.decodeToken(403)).toBe('Once');
    expect(tokenizer.decodeToken(2, 403)).toBe('</s>');
    expect(tokenizer.decodeToken(13, 261)).toBe('\n');
  });

  test('missing tokenizer.json names the files', async () => {
    const folder = modelFolder('no-tokenizer-json', { 'tokenizer_config.json': '{}' }, false);
    const error = await loadHfTokenizer(folder).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FormatError);
    const message = (error as Error).message;
    expect(message).toContain(folder);
    expect(message).toContain('tokenizer.json not found');
    expect(message).toContain('looked for tokenizer.json, tokenizer_config.json, special_tokens_map.json, chat_template.jinja');
    expect(message).toContain('the folder contains tokenizer_config.json');
  });

  test('missing folder is a FormatError', async () => {
    const folder = path.join(temporaryRoot, 'does-not-exist');
    await expect(loadHfTokenizer(folder)).rejects.toThrow(FormatError);
    await expect(loadHfTokenizer(folder)).rejects.toThrow(`${folder}: folder not found`);
  });

  test('invalid tokenizer_config.json names the file', async () => {
    const folder = modelFolder('bad-config', { 'tokenizer_config.json': '{"bos_token": ' });
    await expect(loadHfTokenizer(folder)).rejects.toThrow(FormatError);
    await expect(loadHfTokenizer(folder)).rejects.toThrow(`${path.join(folder, 'tokenizer_config.json')}: invalid JSON`);
  });

  test('special token missing from the vocabulary', async () => {
    const folder = modelFolder('bad-eos', { 'tokenizer_config.json': JSON.stringify({ eos_token: '<|endoftext|>' }) });
    await expect(loadHfTokenizer(folder)).rejects.toThrow(ConfigError);
    await expect(loadHfTokenizer(folder)).rejects.toThrow('eos_token "<|endoftext|>" is not in the vocabulary');
  });

  test('add_bos_token and add_eos_token set the defaults', async () => {
    const config = { bos_token: { content: '<s>' }, eos_token: '</s>', add_bos_token: false, add_eos_token: true };
    const tokenizer = await loadHfTokenizer(modelFolder('no-bos', { 'tokenizer_config.json': JSON.stringify(config) }));
    expect(tokenizer.encode('Once upon a time')).toEqual([403, 407, 261, 378, 2]);
    expect(tokenizer.encode('Once upon a time', { addBos: true, addEos: false })).toEqual([1, 403, 407, 261, 378]);
  });

  test('special_tokens_map.json fills missing tokens', async () => {
    const folder = modelFolder('special-tokens-map', {
      'tokenizer_config.json': JSON.stringify({ add_bos_token: true }),
      'special_tokens_map.json': JSON.stringify({ bos_token: '<s>', eos_token: '</s>', pad_token: '<unk>' }),
    });
    const tokenizer = await loadHfTokenizer(folder);
    expect([tokenizer.bosId, tokenizer.eosId, tokenizer.padId]).toEqual([1, 2, 0]);
  });
});

describe('applyChatTemplate', () => {
  test('renders a two-message chat', async () => {
    const config = { bos_token: '<s>', eos_token: '</s>', chat_template: llama2Template };
    const tokenizer = await loadHfTokenizer(modelFolder('llama2-chat', { 'tokenizer_config.json': JSON.stringify(config) }));
    expect(tokenizer.applyChatTemplate(chat)).toBe(
      '<s>[INST] Tell me a story. [/INST] Once upon a time, there was a cat. </s>',
    );
  });

  test('adds the generation prompt', async () => {
    const config = { bos_token: '<s>', eos_token: '</s>', chat_template: chatMlTemplate };
    const tokenizer = await loadHfTokenizer(modelFolder('chatml', { 'tokenizer_config.json': JSON.stringify(config) }));
    const rendered = '<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\nOnce upon a time, there was a cat.<|im_end|>\n';
    expect(tokenizer.applyChatTemplate(chat)).toBe(rendered);
    expect(tokenizer.applyChatTemplate(chat, { addGenerationPrompt: true })).toBe(rendered + '<|im_start|>assistant\n');
  });

  test('chat_template.jinja replaces the config one', async () => {
    const folder = modelFolder('jinja-file', {
      'tokenizer_config.json': JSON.stringify({ chat_template: [{ name: 'default', template: llama2Template }] }),
      'chat_template.jinja': chatMlTemplate,
    });
    const tokenizer = await loadHfTokenizer(folder);
    expect(tokenizer.applyChatTemplate(chat.slice(0, 1))).toBe('<|im_start|>user\nTell me a story.<|im_end|>\n');
  });

  test('named templates use "default"', async () => {
    const templates = [
      { name: 'tool_use', template: 'tools' },
      { name: 'default', template: chatMlTemplate },
    ];
    const folder = modelFolder('named', { 'tokenizer_config.json': JSON.stringify({ chat_template: templates }) });
    const tokenizer = await loadHfTokenizer(folder);
    expect(tokenizer.applyChatTemplate(chat.slice(0, 1))).toBe('<|im_start|>user\nTell me a story.<|im_end|>\n');
  });

  test('raise_exception becomes a ConfigError', async () => {
    const config = { bos_token: '<s>', eos_token: '</s>', chat_template: llama2Template };
    const tokenizer = await loadHfTokenizer(modelFolder('alternate', { 'tokenizer_config.json': JSON.stringify(config) }));
    expect(() => tokenizer.applyChatTemplate(chat.slice(1))).toThrow(ConfigError);
    expect(() => tokenizer.applyChatTemplate(chat.slice(1))).toThrow('Conversation roles must alternate');
  });

  test('invalid Jinja names the folder', async () => {
    const folder = modelFolder('bad-jinja', { 'tokenizer_config.json': JSON.stringify({ chat_template: '{% for m in messages %}' }) });
    await expect(loadHfTokenizer(folder)).rejects.toThrow(ConfigError);
    await expect(loadHfTokenizer(folder)).rejects.toThrow(`${folder}: the chat template is not valid Jinja`);
  });

  test('no template is a ConfigError', async () => {
    const tokenizer = await loadHfTokenizer(storiesHf);
    expect(() => tokenizer.applyChatTemplate(chat)).toThrow(ConfigError);
    expect(() => tokenizer.applyChatTemplate(chat)).toThrow('has no chat template');
  });

  test('SentencePiece tokenizer has no template', () => {
    const tokenizer = SentencePieceBpeTokenizer.fromVocab({
      tokens: ['<unk>', '<s>', '</s>', ' ', 'a'],
      scores: [0, 0, 0, 0, 0],
      bosId: 1,
      eosId: 2,
      unkId: 0,
    });
    expect(() => tokenizer.applyChatTemplate(chat)).toThrow(ConfigError);
  });
});
