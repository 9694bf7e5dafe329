import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { ConfigError, FormatError, TemaError } from '@tematrainer/tensor';

import { type AssetEntry, type AssetManifest, loadAssetManifest } from './manifest.js';

/** Origin of a file in one `ensureAssets` call. */
export type AssetSource = 'cache' | 'mirror' | 'download';

/** Progress of one file; `bytesTotal` is the manifest size. */
export interface AssetProgress {
  name: string;
  file: string;
  source: AssetSource;
  bytesDone: number;
  bytesTotal: number;
}

export interface EnsureAssetsOptions {
  /** Asset folder; each file lands at `dir/<entry.file>`. */
  dir: string;
  /** Folder with the same layout to copy from; defaults to `$TEMA_ASSETS_MIRROR`, null for none. */
  mirror?: string | null;
  /** Entry names or group names to ensure; all entries when absent. */
  names?: readonly string[];
  /**
   * Replaces the download URL of every entry, including those without a public URL: a prefix
   * (the URL becomes `<prefix>/<entry.file>`) or a function of the entry.
   */
  baseUrlOverride?: string | ((entry: AssetEntry) => string);
  /** The fetch to download with; defaults to the global fetch. */
  fetch?: typeof fetch;
  onProgress?: (progress: AssetProgress) => void;
  /** The manifest or its path; defaults to the repository's `assets/manifest.json`. */
  manifest?: AssetManifest | string;
}

/**
 * Makes sure each selected manifest entry is present and verified under `dir`, and returns a
 * map from entry name to absolute path.
 *
 * A file already in `dir` with the manifest's sha256 is kept. Otherwise it is copied from the
 * mirror folder when the mirror has it, else downloaded. Both stream into a temporary file next
 * to the target, which is renamed into place only after its sha256 matches, so an interrupted
 * or corrupt transfer never leaves a file under the final name. A mismatch raises a
 * FormatError naming the file and both hashes.
 */
export async function ensureAssets(options: EnsureAssetsOptions): Promise<Record<string, string>> {
  const manifest =
    options.manifest === undefined || typeof options.manifest === 'string'
      ? await loadAssetManifest(options.manifest)
      : options.manifest;
  const mirror = options.mirror === undefined ? process.env.TEMA_ASSETS_MIRROR : options.mirror;
  const dir = path.resolve(options.dir);

  const paths: Record<string, string> = {};
  for (const entry of selectEntries(manifest, options.names)) {
    paths[entry.name] = await ensureAsset(entry, dir, mirror ? path.resolve(mirror) : null, options);
  }
  return paths;
}

function selectEntries(manifest: AssetManifest, names: readonly string[] | undefined): AssetEntry[] {
  if (names === undefined) {
    return manifest.assets;
  }

  const known = new Set(manifest.assets.flatMap((entry) => [entry.name, ...(entry.group ? [entry.group] : [])]));
  const unknown = names.filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new ConfigError(
      `unknown asset ${unknown.map((name) => `"${name}"`).join(', ')}; known names and groups: ${[...known].join(', ')}`,
    );
  }
  return manifest.assets.filter(
    (entry) => names.includes(entry.name) || (entry.group !== undefined && names.includes(entry.group)),
  );
}

async function ensureAsset(
  entry: AssetEntry,
  dir: string,
  mirror: string | null,
  options: EnsureAssetsOptions,
): Promise<string> {
  const target = path.join(dir, entry.file);
  const report = (source: AssetSource, bytesDone: number) =>
    options.onProgress?.({ name: entry.name, file: entry.file, source, bytesDone, bytesTotal: entry.size });

  if ((await isFile(target)) && (await sha256OfFile(target)) === entry.sha256) {
    report('cache', entry.size);
    return target;
  }

  if (mirror !== null) {
    const mirrored = path.join(mirror, entry.file);
    if (await isFile(mirrored)) {
      await writeVerified(createReadStream(mirrored), entry, target, `copy from ${mirrored}`, (done) =>
        report('mirror', done),
      );
      return target;
    }
  }

  const url = downloadUrl(entry, options.baseUrlOverride);
  if (url === null) {
    throw new ConfigError(
      `${entry.file}: no public URL (${entry.derivedFrom ?? 'derived locally'}); ` +
        `set TEMA_ASSETS_MIRROR or the mirror option to a folder that contains ${entry.file}` +
        (mirror === null ? '' : `; the mirror ${mirror} does not`),
    );
  }

  await writeVerified(await openDownload(entry, url, options.fetch ?? globalThis.fetch), entry, target, `download from ${url}`, (done) =>
    report('download', done),
  );
  return target;
}

function downloadUrl(entry: AssetEntry, override: EnsureAssetsOptions['baseUrlOverride']): string | null {
  if (typeof override === 'function') {
    return override(entry);
  }
  if (typeof override === 'string') {
    return `${override.replace(/\/+$/, '')}/${entry.file}`;
  }
  return entry.url;
}

async function openDownload(entry: AssetEntry, url: string, fetchFunction: typeof fetch): Promise<Readable> {
  let response: Response;
  try {
    response = await fetchFunction(url);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new TemaError(
      `${entry.file}: download from ${url} failed (${reason}); check the network, or set TEMA_ASSETS_MIRROR to a folder that contains the file`,
      { cause: error },
    );
  }

  if (!response.ok || response.body === null) {
    throw new TemaError(`${entry.file}: download from ${url} failed: HTTP ${response.status} ${response.statusText}`);
  }
  return Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
}

/** Streams `source` into a temporary file, checks its sha256, then renames it to `target`. */
async function writeVerified(
  source: Readable,
  entry: AssetEntry,
  target: string,
  origin: string,
  onBytes: (bytesDone: number) => void,
): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  const temporary = `${target}.${process.pid}-${randomBytes(4).toString('hex')}.part`;
  const hash = createHash('sha256');
  let bytesDone = 0;

  try {
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          bytesDone += chunk.length;
          onBytes(bytesDone);
          yield chunk;
        }
      },
      createWriteStream(temporary),
    );

    const actual = hash.digest('hex');
    if (actual !== entry.sha256) {
      throw new FormatError(
        `${entry.file}: sha256 mismatch after ${origin}: expected ${entry.sha256}, found ${actual} (${bytesDone} bytes, expected ${entry.size}); the file was removed`,
      );
    }
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Returns the lowercase hex SHA-256 of a file's bytes. */
export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
