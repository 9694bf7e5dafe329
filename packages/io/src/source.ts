import { open } from 'node:fs/promises';
import { FormatError } from '@tematrainer/tensor';

/**
 * Random-access bytes of one file or blob. Readers fetch only the ranges they need, so a
 * multi-gigabyte checkpoint is never held in memory as a whole.
 */
export interface ByteSource {
  /** File path or blob name, which starts every error message. */
  name: string;
  /** Size in bytes. */
  size: number;
  /** Reads exactly `length` bytes at `offset`, or raises FormatError when the range passes the end. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

// fs reads take at most 2 GiB - 1 bytes per call, so large ranges are read in pieces.
const MAX_READ_CHUNK = 1 << 30;

function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new FormatError(`${name}: invalid byte range (offset ${offset}, length ${length})`);
  }
  if (offset + length > size) {
    throw new FormatError(
      `${name}: expected ${length} bytes at offset ${offset}, but the file has only ${size} bytes — is it truncated?`,
    );
  }
}

/**
 * Opens a file for reads by offset through node:fs/promises, which Node, Bun and Deno provide.
 * Each read opens and closes the file, so callers have no handle to release.
 */
export async function openFile(path: string): Promise<ByteSource> {
  const handle = await open(path, 'r');
  let size: number;
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new FormatError(`${path}: not a regular file`);
    size = stats.size;
  } finally {
    await handle.close();
  }

  return {
    name: path,
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      checkRange(path, size, offset, length);
      const out = new Uint8Array(length);
      const file = await open(path, 'r');
      try {
        let done = 0;
        while (done < length) {
          const chunk = Math.min(MAX_READ_CHUNK, length - done);
          const { bytesRead } = await file.read(out, done, chunk, offset + done);
          if (bytesRead === 0) {
            throw new FormatError(`${path}: file ended at byte ${offset + done}, expected ${size} bytes — was it truncated while open?`);
          }
          done += bytesRead;
        }
      } finally {
        await file.close();
      }
      return out;
    },
  };
}

/** Wraps a browser `Blob` or `File` (for example from an `<input type="file">`). */
export function blobSource(blob: Blob, name: string): ByteSource {
  return {
    name,
    size: blob.size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      checkRange(name, blob.size, offset, length);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
}

/** Wraps bytes already in memory, for tests and for files fetched whole. */
export function bytesSource(bytes: Uint8Array, name: string): ByteSource {
  return {
    name,
    size: bytes.length,
    async read(offset: number, length: number): Promise<Uint8Array> {
      checkRange(name, bytes.length, offset, length);
      return bytes.slice(offset, offset + length);
    },
  };
}

/** Returns `input` itself when it is a ByteSource, or opens it as a file path. */
export async function toSource(input: string | ByteSource): Promise<ByteSource> {
  return typeof input === 'string' ? openFile(input) : input;
}
