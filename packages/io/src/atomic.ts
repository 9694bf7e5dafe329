import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Bytes to write: one buffer, or chunks from a list or an (async) generator. */
export type FileContents = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** Returns the name of a fresh temporary file next to `path`: `.<name>.tmp-<pid>-<random>`. */
export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/**
 * Writes a file so that readers see either the old contents or the new ones, never a part.
 * The bytes go to a temporary file in the same folder (rename is atomic only within one file
 * system), which is flushed with fsync and renamed over `path`. On an error the temporary file
 * is removed. A process killed mid-write leaves it behind, and `path` keeps its old contents.
 */
export async function writeFileAtomic(path: string, contents: FileContents): Promise<void> {
  const temporary = temporaryPathFor(path);
  let handle;
  try {
    handle = await open(temporary, 'wx');
  } catch (error) {
    // Name the file the caller asked for, not the temporary one beside it.
    const e = error as NodeJS.ErrnoException;
    const reason = e.code === 'ENOENT' ? `the folder ${dirname(path)} does not exist` : e.message;
    throw Object.assign(new Error(`cannot write ${path}: ${reason}`), { code: e.code });
  }
  try {
    try {
      const chunks = contents instanceof Uint8Array ? [contents] : contents;
      for await (const chunk of chunks) {
        let done = 0;
        while (done < chunk.length) {
          const { bytesWritten } = await handle.write(chunk, done, chunk.length - done);
          done += bytesWritten;
        }
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  await syncFolder(dirname(path));
}

// Flushing the folder makes the rename itself durable across a power loss. Some systems
// (Windows, some network file systems) cannot open or fsync a folder, and there the
// rename is left to the file system.
async function syncFolder(folder: string): Promise<void> {
  try {
    const handle = await open(folder, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Folder fsync is not available here, but the file itself is already flushed.
  }
}
