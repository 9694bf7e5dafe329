import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { FormatError } from '@tematrainer/tensor';

/** One file of the asset manifest. */
export interface AssetEntry {
  /** Unique name, used to select assets and to key the result of `ensureAssets`. */
  name: string;
  /** Optional group name (for example "corpora"); selecting a group selects all its entries. */
  group?: string;
  /** Path inside the asset folder, with forward slashes. */
  file: string;
  /** Public origin, or null for a file derived locally that only a mirror folder can supply. */
  url: string | null;
  /** Description of the conversion that produced a file without a public URL. */
  derivedFrom?: string;
  /** Lowercase hex SHA-256 of the file. */
  sha256: string;
  /** Size in bytes. */
  size: number;
  licence: string;
}

export interface AssetManifest {
  description?: string;
  assets: AssetEntry[];
}

/** The manifest kept in the repository, `assets/manifest.json` at its root. */
export const DEFAULT_MANIFEST_PATH = fileURLToPath(new URL('../../../../assets/manifest.json', import.meta.url));

/** Reads and validates an asset manifest. */
export async function loadAssetManifest(file: string = DEFAULT_MANIFEST_PATH): Promise<AssetManifest> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw new FormatError(`${file}: invalid JSON (${error.message})`);
    }
    throw error;
  }
  return parseAssetManifest(json, file);
}

/**
 * Validates a parsed manifest; `source` names it in error messages. Each `file` must be a
 * relative path that stays inside the asset folder.
 */
export function parseAssetManifest(json: unknown, source: string): AssetManifest {
  if (!isObject(json) || !Array.isArray(json.assets)) {
    throw new FormatError(`${source}: expected an object with an "assets" list`);
  }

  const names = new Set<string>();
  const assets = json.assets.map((entry: unknown, index): AssetEntry => {
    const where = `${source}: assets[${index}]`;
    if (!isObject(entry)) {
      throw new FormatError(`${where}: expected an object`);
    }

    const name = requireString(entry, 'name', where);
    if (names.has(name)) {
      throw new FormatError(`${where}.name: "${name}" appears twice; names must be unique`);
    }
    names.add(name);

    const file = requireString(entry, 'file', where);
    const normalized = path.posix.normalize(file);
    if (path.posix.isAbsolute(file) || path.win32.isAbsolute(file) || normalized === '..' || normalized.startsWith('../') || normalized !== file) {
      throw new FormatError(`${where}.file: expected a normalized relative path inside the asset folder, found "${file}"`);
    }

    const url = entry.url;
    if (url !== null && (typeof url !== 'string' || !/^https?:\/\//.test(url))) {
      throw new FormatError(`${where}.url: expected an http(s) URL or null, found ${JSON.stringify(url)}`);
    }

    const sha256 = requireString(entry, 'sha256', where);
    if (!/^[0-9a-f]{64}$/.test(sha256)) {
      throw new FormatError(`${where}.sha256: expected 64 lowercase hex digits, found "${sha256}"`);
    }

    const size = entry.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw new FormatError(`${where}.size: expected a byte count, found ${JSON.stringify(size)}`);
    }

    const result: AssetEntry = { name, file, url, sha256, size, licence: requireString(entry, 'licence', where) };
    if (entry.group !== undefined) {
      result.group = requireString(entry, 'group', where);
    }
    if (entry.derivedFrom !== undefined) {
      result.derivedFrom = requireString(entry, 'derivedFrom', where);
    }
    return result;
  });

  const manifest: AssetManifest = { assets };
  if (typeof json.description === 'string') {
    manifest.description = json.description;
  }
  return manifest;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireString(entry: Record<string, unknown>, field: string, where: string): string {
  const value = entry[field];
  if (typeof value !== 'string' || value.length === 0) {
    throw new FormatError(`${where}.${field}: expected a non-empty string, found ${JSON.stringify(value)}`);
  }
  return value;
}
