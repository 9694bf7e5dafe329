import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { FormatError } from '@tematrainer/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readDataset } from './dataset.js';

let folder: string;

beforeAll(async () => {
  folder = await mkdtemp(path.join(tmpdir(), 'tema-dataset-'));
});

afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

async function writeLines(name: string, lines: string[]): Promise<string> {
  const file = path.join(folder, name);
  await writeFile(file, lines.join('\n'));
  return file;
}

describe('readDataset', () => {
  it('reads the text format and skips blank lines', async () => {
    const file = await writeLines('text.jsonl', ['{"text": "Once upon a time"}', '', '  ', '{"text": "The end.", "id": 7}', '']);
    const dataset = await readDataset(file);
    expect(dataset.format).toBe('text');
    expect(dataset.examples).toEqual([{ text: 'Once upon a time' }, { text: 'The end.' }]);
  });

  it('reads the prompt-completion format', async () => {
    const file = await writeLines('pc.jsonl', ['{"prompt": "2+2=", "completion": "4"}', '{"prompt": "Hi", "completion": " there"}']);
    const dataset = await readDataset(file);
    expect(dataset.format).toBe('prompt-completion');
    expect(dataset.examples).toEqual([
      { prompt: '2+2=', completion: '4' },
      { prompt: 'Hi', completion: ' there' },
    ]);
  });

  it('reads the messages format', async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: 'Hi!' },
    ];
    const file = await writeLines('chat.jsonl', [JSON.stringify({ messages })]);
    const dataset = await readDataset(file);
    expect(dataset.format).toBe('messages');
    expect(dataset.examples).toEqual([{ messages }]);
  });

  it('reads the conversational prompt-completion format', async () => {
    const record = {
      prompt: [{ role: 'user', content: 'What color is the sky?' }],
      completion: [{ role: 'assistant', content: 'Blue.' }],
    };
    const file = await writeLines('chat-pc.jsonl', [JSON.stringify(record)]);
    const dataset = await readDataset(file);
    expect(dataset.format).toBe('conversational-prompt-completion');
    expect(dataset.examples).toEqual([record]);
  });

  it('reads a .txt file as one text record', async () => {
    const file = path.join(folder, 'plain.txt');
    await writeFile(file, '\uFEFFline one\r\nline two\r\n');
    const dataset = await readDataset(file);
    expect(dataset.format).toBe('text');
    expect(dataset.examples).toEqual([{ text: 'line one\nline two\n' }]);
  });

  it('names file and line of invalid JSON', async () => {
    const file = await writeLines('broken.jsonl', ['{"text": "ok"}', '', '{"text": "unterminated']);
    const error = await readDataset(file).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FormatError);
    expect((error as Error).message).toContain(`${file}:3: invalid JSON`);
    expect((error as Error).message).toContain('{"text": "unterminated');
  });

  it('names file and line of a record with no format', async () => {
    const file = await writeLines('unknown.jsonl', ['{"text": "ok"}', '{"question": "why?", "answer": "because"}']);
    const error = await readDataset(file).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FormatError);
    expect((error as Error).message).toContain(`${file}:2: record fits no dataset format`);
    expect((error as Error).message).toContain('"question", "answer"');
  });

  it('names the field of a bad message', async () => {
    const file = await writeLines('bad-message.jsonl', ['{"messages": [{"role": "user", "content": 3}]}']);
    await expect(readDataset(file)).rejects.toThrow(`${file}:1: messages[0].content: expected a string, found number 3`);
  });

  it('rejects a prompt without completion', async () => {
    const file = await writeLines('prompt-only.jsonl', ['{"prompt": "Hi"}']);
    await expect(readDataset(file)).rejects.toThrow(`${file}:1: record has "prompt" but no "completion"`);
  });

  it('rejects mixed formats', async () => {
    const file = await writeLines('mixed.jsonl', ['{"text": "a"}', '{"prompt": "b", "completion": "c"}']);
    await expect(readDataset(file)).rejects.toThrow(`${file}:2: record is in the prompt-completion format, but line 1 is in the text format`);
  });

  it('rejects a non-object line', async () => {
    const file = await writeLines('array.jsonl', ['["text"]']);
    await expect(readDataset(file)).rejects.toThrow(`${file}:1: expected a JSON object, found a list`);
  });

  it('names the file of an empty dataset', async () => {
    const file = await writeLines('empty.jsonl', ['', '   ', '']);
    const error = await readDataset(file).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FormatError);
    expect((error as Error).message).toBe(`${file}: empty dataset: no records found`);
  });
});
