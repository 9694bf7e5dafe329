import path from 'node:path';

import { FormatError } from '@tematrainer/tensor';

import { decodeText, readInput } from './text.js';
import type { ChatMessage, DatasetFormat, Example } from './types.js';

/** A dataset read from one file; every example has the same format. */
export interface Dataset {
  path: string;
  format: DatasetFormat;
  examples: Example[];
}

/**
 * Reads a dataset in one of trl's SFT formats.
 *
 * `.jsonl` and `.json` files contain one JSON object per line, and blank lines are skipped. Each
 * object has `text`, or `prompt` and `completion` as strings, or `messages`, or `prompt` and
 * `completion` as message lists. Other fields are ignored. When a record has several of these, `messages`
 * wins over `prompt`/`completion`, which win over `text`. A `.txt` file is one `{text}` record
 * holding the whole file, decoded as by `decodeText`.
 *
 * Raises a FormatError naming `file:line` for a line that is not JSON or fits no format, for a
 * line whose format differs from the first line's, and naming the file for an empty dataset.
 */
export async function readDataset(file: string): Promise<Dataset> {
  const extension = path.extname(file).toLowerCase();
  const bytes = await readInput(file);

  if (extension === '.txt') {
    const text = decodeText(bytes, file);
    if (text.length === 0) {
      throw new FormatError(`${file}: empty dataset: the file has no text`);
    }
    return { path: file, format: 'text', examples: [{ text }] };
  }

  if (extension !== '.jsonl' && extension !== '.json') {
    throw new FormatError(
      `${file}: unknown dataset extension "${extension}": expected .jsonl or .json (one JSON object per line) or .txt (plain text)`,
    );
  }
  return parseJsonLines(decodeText(bytes, file), file);
}

/** Parses JSONL text into a dataset; `file` is used in error messages only. */
export function parseJsonLines(text: string, file: string): Dataset {
  const examples: Example[] = [];
  let format: DatasetFormat | null = null;
  let formatLine = 0;

  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!;
    const lineNumber = index + 1;
    if (line.trim().length === 0) {
      continue;
    }

    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new FormatError(`${file}:${lineNumber}: invalid JSON (${reason}); found ${preview(line)}`);
    }

    const parsed = parseRecord(record, `${file}:${lineNumber}`);
    if (format === null) {
      format = parsed.format;
      formatLine = lineNumber;
    } else if (parsed.format !== format) {
      throw new FormatError(
        `${file}:${lineNumber}: record is in the ${parsed.format} format, but line ${formatLine} is in the ${format} format; a dataset has one format`,
      );
    }
    examples.push(parsed.example);
  }

  if (format === null) {
    throw new FormatError(`${file}: empty dataset: no records found`);
  }
  return { path: file, format, examples };
}

/** Returns the format of an example that has already been validated. */
export function exampleFormat(example: Example): DatasetFormat {
  if ('messages' in example) {
    return 'messages';
  }
  if ('prompt' in example) {
    return typeof example.prompt === 'string' ? 'prompt-completion' : 'conversational-prompt-completion';
  }
  return 'text';
}

/**
 * Validates one parsed JSON record against trl's formats and returns it reduced to the fields of
 * its format. `where` (for example `data.jsonl:3`) starts every error message.
 */
export function parseRecord(record: unknown, where: string): { format: DatasetFormat; example: Example } {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    throw new FormatError(`${where}: expected a JSON object, found ${describe(record)}`);
  }
  const fields = record as Record<string, unknown>;

  if ('messages' in fields) {
    return { format: 'messages', example: { messages: parseMessages(fields.messages, `${where}: messages`) } };
  }

  if ('prompt' in fields || 'completion' in fields) {
    return parsePromptCompletion(fields, where);
  }

  if ('text' in fields) {
    if (typeof fields.text !== 'string') {
      throw new FormatError(`${where}: text: expected a string, found ${describe(fields.text)}`);
    }
    return { format: 'text', example: { text: fields.text } };
  }

  const keys = Object.keys(fields);
  throw new FormatError(
    `${where}: record fits no dataset format: expected "text", "prompt" and "completion", or "messages"; found ${
      keys.length === 0 ? 'no fields' : `fields ${keys.map((key) => JSON.stringify(key)).join(', ')}`
    }`,
  );
}

function parsePromptCompletion(
  fields: Record<string, unknown>,
  where: string,
): { format: DatasetFormat; example: Example } {
  if (!('prompt' in fields) || !('completion' in fields)) {
    const [present, missing] = 'prompt' in fields ? ['prompt', 'completion'] : ['completion', 'prompt'];
    throw new FormatError(`${where}: record has "${present}" but no "${missing}"; SFT needs both`);
  }

  const { prompt, completion } = fields;
  if (typeof prompt === 'string' && typeof completion === 'string') {
    return { format: 'prompt-completion', example: { prompt, completion } };
  }
  if (Array.isArray(prompt) && Array.isArray(completion)) {
    return {
      format: 'conversational-prompt-completion',
      example: {
        prompt: parseMessages(prompt, `${where}: prompt`),
        completion: parseMessages(completion, `${where}: completion`),
      },
    };
  }
  throw new FormatError(
    `${where}: prompt and completion must both be strings or both be message lists; found prompt ${describe(prompt)} and completion ${describe(completion)}`,
  );
}

function parseMessages(value: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(value)) {
    throw new FormatError(`${where}: expected a list of {role, content} messages, found ${describe(value)}`);
  }
  if (value.length === 0) {
    throw new FormatError(`${where}: expected at least one message, found an empty list`);
  }

  return value.map((message: unknown, index) => {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      throw new FormatError(`${where}[${index}]: expected a {role, content} object, found ${describe(message)}`);
    }
    const { role, content } = message as Record<string, unknown>;
    if (typeof role !== 'string') {
      throw new FormatError(`${where}[${index}].role: expected a string, found ${describe(role)}`);
    }
    if (typeof content !== 'string') {
      throw new FormatError(`${where}[${index}].content: expected a string, found ${describe(content)}`);
    }
    return { role, content };
  });
}

function describe(value: unknown): string {
  if (value === undefined) {
    return 'nothing';
  }
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'a list';
  }
  if (typeof value === 'object') {
    return 'an object';
  }
  return `${typeof value} ${preview(JSON.stringify(value))}`;
}

function preview(text: string, maxChars = 80): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}…`;
}
