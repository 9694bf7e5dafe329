import { readFile } from 'node:fs/promises';
import { ConfigError, FormatError } from '@tematrainer/tensor';

const BYTE_ORDER_MARK = '\uFEFF';

/**
 * Decodes a text file's bytes as UTF-8, drops a leading byte order mark and converts CRLF line
 * endings to LF. A lone CR is kept, because the reference corpus protocol converts only CRLF.
 * Invalid UTF-8 raises a FormatError naming `file`.
 */
export function decodeText(bytes: Uint8Array, file: string): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new FormatError(`${file}: invalid UTF-8; convert the file to UTF-8 and retry`);
  }

  if (text.startsWith(BYTE_ORDER_MARK)) {
    text = text.slice(BYTE_ORDER_MARK.length);
  }
  return text.replaceAll('\r\n', '\n');
}

/** Read an input file, with a ConfigError naming it when it does not exist or is a folder. */
export async function readInput(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`${file}: file not found`);
    if (code === 'EISDIR') throw new ConfigError(`${file}: is a folder, expected a text or JSONL file`);
    throw error;
  }
}
