import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '@tematrainer/io';
import { ConfigError } from '@tematrainer/tensor';
import { readCorpusText, readDataset } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'tema-input-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('input files', () => {
  it('a missing file is a ConfigError naming it', async () => {
    const missing = join(dir, 'nothere.jsonl');
    await expect(readDataset(missing)).rejects.toThrow(ConfigError);
    await expect(readDataset(missing)).rejects.toThrow(`${missing}: file not found`);
    await expect(readCorpusText(join(dir, 'nothere.txt'))).rejects.toThrow('file not found');
    await expect(readCorpusText(dir)).rejects.toThrow('is a folder');
  });

  it('a JSONL corpus contributes the text of its records, not its JSON', async () => {
    const file = join(dir, 'corpus.jsonl');
    writeFileSync(
      file,
      [
        JSON.stringify({ text: 'First record.' }),
        JSON.stringify({ text: 'Second record.' }),
      ].join('\n'),
    );
    expect(await readCorpusText(file)).toBe('First record.\n\nSecond record.');
    const chat = join(dir, 'chat.jsonl');
    writeFileSync(chat, JSON.stringify({ prompt: 'Q: 2+2? ', completion: 'A: 4' }));
    expect(await readCorpusText(chat)).toBe('Q: 2+2? A: 4');
  });

  it('an atomic write into a missing folder names the target file', async () => {
    const target = join(dir, 'no-such-folder', 'logits.safetensors');
    await expect(writeFileAtomic(target, new Uint8Array(4))).rejects.toThrow(`cannot write ${target}: the folder ${join(dir, 'no-such-folder')} does not exist`);
  });
});
