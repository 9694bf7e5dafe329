import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { ConfigError, FormatError, TemaError } from '@tematrainer/tensor';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { ensureAssets, type AssetProgress } from './ensure.js';
import { loadAssetManifest, parseAssetManifest, type AssetManifest } from './manifest.js';

const fixtures = path.resolve(import.meta.dirname, '../../../../../shared/fixtures');

let manifest: AssetManifest;
let dir: string;

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Serves fixture files by path on 127.0.0.1; `corrupt` flips one byte of every file. */
async function startServer(corrupt = false): Promise<{ server: Server; baseUrl: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((request, response) => {
    const file = decodeURIComponent(new URL(request.url ?? '/', 'http://127.0.0.1').pathname).slice(1);
    requests.push(file);
    let bytes: Buffer;
    try {
      bytes = readFileSync(path.join(fixtures, path.normalize(file)));
    } catch {
      response.writeHead(404).end();
      return;
    }
    if (corrupt) {
      bytes = Buffer.from(bytes);
      bytes[bytes.length >> 1] ^= 0xff;
    }
    response.writeHead(200, { 'content-length': bytes.length }).end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, baseUrl: `http://127.0.0.1:${port}`, requests };
}

async function listFiles(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => entry.name);
}

beforeAll(async () => {
  manifest = await loadAssetManifest();
});

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tema-assets-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('asset manifest', () => {
  it('lists the demo files and corpora', () => {
    expect(manifest.assets.map((entry) => entry.name)).toEqual([
      'stories260K.bin',
      'tok512.bin',
      'stories260K.gguf',
      'stories260K-hf/config.json',
      'stories260K-hf/generation_config.json',
      'stories260K-hf/model.safetensors',
      'stories260K-hf/tokenizer.json',
      'stories260K-hf/tokenizer_config.json',
      'tinystories_train_head',
      'tinyshakespeare',
      'federalist_papers',
      'rfc2616',
      'origin_of_species',
    ]);
  });

  it('matches the fixture files', () => {
    for (const entry of manifest.assets) {
      const bytes = readFileSync(path.join(fixtures, entry.file));
      expect(bytes.length, entry.file).toBe(entry.size);
      expect(sha256(bytes), entry.file).toBe(entry.sha256);
    }
  });

  it('gives a URL or a derivation', () => {
    for (const entry of manifest.assets) {
      if (entry.url === null) {
        expect(entry.derivedFrom, entry.name).toMatch(/stories260K\.gguf/);
      } else {
        expect(entry.url, entry.name).toMatch(/^https:\/\/(raw\.githubusercontent\.com|huggingface\.co)\//);
      }
    }
  });

  it('rejects a path leaving the asset folder', () => {
    const entry = { ...manifest.assets[0]!, file: '../outside.bin' };
    expect(() => parseAssetManifest({ assets: [entry] }, 'm.json')).toThrow(FormatError);
    expect(() => parseAssetManifest({ assets: [entry] }, 'm.json')).toThrow('m.json: assets[0].file');
  });
});

describe('ensureAssets', () => {
  it('copies from the mirror and then keeps the copies', async () => {
    const events: AssetProgress[] = [];
    const paths = await ensureAssets({ dir, mirror: fixtures, onProgress: (event) => events.push(event) });

    expect(Object.keys(paths)).toHaveLength(manifest.assets.length);
    for (const entry of manifest.assets) {
      const copied = await readFile(paths[entry.name]!);
      expect(paths[entry.name]).toBe(path.join(dir, entry.file));
      expect(copied.equals(readFileSync(path.join(fixtures, entry.file))), entry.file).toBe(true);
      const last = events.filter((event) => event.name === entry.name).at(-1)!;
      expect(last).toEqual({ name: entry.name, file: entry.file, source: 'mirror', bytesDone: entry.size, bytesTotal: entry.size });
    }

    const second: AssetProgress[] = [];
    await ensureAssets({ dir, mirror: fixtures, onProgress: (event) => second.push(event) });
    expect(second.map((event) => event.source)).toEqual(manifest.assets.map(() => 'cache'));
  });

  it('replaces a file with the wrong hash', async () => {
    const target = path.join(dir, 'corpora/rfc2616.txt');
    await ensureAssets({ dir, mirror: fixtures, names: ['rfc2616'] });
    await writeFile(target, 'not the RFC');

    const events: AssetProgress[] = [];
    await ensureAssets({ dir, mirror: fixtures, names: ['rfc2616'], onProgress: (event) => events.push(event) });
    expect(events.at(-1)!.source).toBe('mirror');
    expect(sha256(await readFile(target))).toBe(manifest.assets.find((entry) => entry.name === 'rfc2616')!.sha256);
  });

  it('selects entries by group', async () => {
    const paths = await ensureAssets({ dir, mirror: fixtures, names: ['corpora', 'tok512.bin'] });
    expect(Object.keys(paths).sort()).toEqual(
      ['federalist_papers', 'origin_of_species', 'rfc2616', 'tinyshakespeare', 'tinystories_train_head', 'tok512.bin'].sort(),
    );
  });

  it('rejects an unknown name', async () => {
    await expect(ensureAssets({ dir, mirror: fixtures, names: ['stories15M'] })).rejects.toThrow(ConfigError);
  });

  it('needs a mirror for derived files', async () => {
    const error = await ensureAssets({ dir, mirror: null, names: ['stories260K-hf/config.json'] }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('stories260K-hf/config.json: no public URL');
    expect((error as Error).message).toContain('TEMA_ASSETS_MIRROR');
  });

  describe('over HTTP', () => {
    let server: Server | undefined;

    afterEach(async () => {
      await new Promise((resolve) => server?.close(resolve));
      server = undefined;
    });

    it('downloads and verifies every file', async () => {
      const started = await startServer();
      server = started.server;
      const events: AssetProgress[] = [];
      const paths = await ensureAssets({
        dir,
        mirror: null,
        baseUrlOverride: started.baseUrl,
        onProgress: (event) => events.push(event),
      });

      expect(started.requests).toEqual(manifest.assets.map((entry) => entry.file));
      for (const entry of manifest.assets) {
        expect(sha256(await readFile(paths[entry.name]!)), entry.file).toBe(entry.sha256);
        const last = events.filter((event) => event.name === entry.name).at(-1)!;
        expect(last.source).toBe('download');
        expect(last.bytesDone).toBe(entry.size);
      }
    });

    it('takes an override function', async () => {
      const started = await startServer();
      server = started.server;
      const paths = await ensureAssets({
        dir,
        mirror: null,
        names: ['tok512.bin'],
        baseUrlOverride: (entry) => `${started.baseUrl}/${entry.file}`,
      });
      expect(sha256(await readFile(paths['tok512.bin']!))).toBe(
        '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312',
      );
    });

    it('rejects a corrupted download and removes it', async () => {
      const started = await startServer(true);
      server = started.server;
      const entry = manifest.assets.find((candidate) => candidate.name === 'tinyshakespeare')!;
      const corrupted = readFileSync(path.join(fixtures, entry.file));
      corrupted[corrupted.length >> 1] ^= 0xff;
      const actual = sha256(corrupted);

      const error = await ensureAssets({ dir, mirror: null, names: ['tinyshakespeare'], baseUrlOverride: started.baseUrl }).catch(
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(FormatError);
      expect((error as Error).message).toContain('corpora/tinyshakespeare.txt: sha256 mismatch');
      expect((error as Error).message).toContain(`expected ${entry.sha256}, found ${actual}`);
      expect(await listFiles(dir)).toEqual([]);
    });

    it('reports an HTTP error', async () => {
      const started = await startServer();
      server = started.server;
      const error = await ensureAssets({
        dir,
        mirror: null,
        names: ['rfc2616'],
        baseUrlOverride: `${started.baseUrl}/missing`,
      }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(TemaError);
      expect((error as Error).message).toContain('corpora/rfc2616.txt: download from');
      expect((error as Error).message).toContain('HTTP 404');
      expect(await listFiles(dir)).toEqual([]);
    });
  });
});
