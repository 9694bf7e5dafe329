import { FormatError } from '@tematrainer/tensor';

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
