import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '@tematrainer/io';
import { ConfigError, FormatError, init } from '@tematrainer/tensor';
import { fixture } from './fixtures.js';
import { loadModel } from './load.js';
import { randomModel, saveModel } from './random.js';
import type { Gpt2Config } from './gpt2.js';

const STORIES_HF = fixture('stories260K-hf');

let tmp: string;

beforeAll(async () => {
  await init();
  tmp = mkdtempSync(join(tmpdir(), 'tema-load-errors-'));
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Copy stories260K-hf into a fresh folder with the given changes to its config.json and tensors. */
async function storiesCopy(
  name: string,
  change: { config?: (json: Record<string, unknown>) => void; tensors?: (record: Record<string, TensorToWrite>) => void; tokenizer?: boolean } = {},
): Promise<string> {
  const dir = join(tmp, name);
  mkdirSync(dir);
  const json = JSON.parse(readFileSync(join(STORIES_HF, 'config.json'), 'utf8'));
  change.config?.(json);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
  const file = await openSafetensors(join(STORIES_HF, 'model.safetensors'));
  const record: Record<string, TensorToWrite> = {};
  for (const [tensor, info] of file.tensors) record[tensor] = { dtype: 'F32', shape: [...info.shape], data: (await file.read(tensor, { as: 'f32' })).data };
  change.tensors?.(record);
  await writeSafetensors(join(dir, 'model.safetensors'), record);
  if (change.tokenizer !== false) copyFileSync(join(STORIES_HF, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  return dir;
}

async function loadError(path: string): Promise<Error> {
  const error = await loadModel(path).then(
    () => null,
    (e: Error) => e,
  );
  expect(error, `loading ${path} should fail`).not.toBeNull();
  return error!;
}

describe('loadModel rejects', () => {
  it('a missing tensor, by name', async () => {
    const dir = await storiesCopy('missing-tensor', { tensors: (r) => delete r['model.layers.3.mlp.up_proj.weight'] });
    const error = await loadError(dir);
    expect(error).toBeInstanceOf(FormatError);
    expect(error.message).toContain(dir);
    expect(error.message).toContain('tensor "model.layers.3.mlp.up_proj.weight" is missing');
  });

  it('a config that does not match the shapes', async () => {
    const dir = await storiesCopy('wrong-shape', { config: (json) => (json.intermediate_size = 256) });
    const error = await loadError(dir);
    expect(error).toBeInstanceOf(FormatError);
    expect(error.message).toContain(dir);
    expect(error.message).toContain('tensor "model.layers.0.mlp.gate_proj.weight" has shape [172, 64], the config expects [256, 64]');
  });

  it('an unknown model_type, naming config.json', async () => {
    const dir = await storiesCopy('bert', { config: (json) => (json.model_type = 'bert') });
    const error = await loadError(dir);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain(join(dir, 'config.json'));
    expect(error.message).toContain('model_type "bert" is not supported');
  });

  it('a missing config field, by name', async () => {
    const dir = await storiesCopy('no-hidden-size', { config: (json) => delete json.hidden_size });
    const error = await loadError(dir);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(`${join(dir, 'config.json')}: missing field "hidden_size"`);
  });

  it('a folder without tokenizer.json', async () => {
    const dir = await storiesCopy('no-tokenizer', { tokenizer: false });
    const error = await loadError(dir);
    expect(error).toBeInstanceOf(FormatError);
    expect(error.message).toContain(dir);
    expect(error.message).toContain('tokenizer.json not found');
  });

  it('a llama2.c checkpoint without its tok*.bin', async () => {
    const bin = join(tmp, 'stories260K.bin');
    copyFileSync(fixture('stories260K/stories260K.bin'), bin);
    const error = await loadError(bin);
    expect(error.message).toContain(bin);
    expect(error.message).toContain('tok512.bin was not found');
  });

  it('a GGUF tensor type it cannot read, naming the file', async () => {
    // Patch the ggml type of token_embd.weight (after its name, dimension count and two
    // dimensions) to 12, Q4_K, which the reader cannot dequantize.
    const bytes = new Uint8Array(readFileSync(fixture('stories260K/stories260K.gguf')));
    const name = new TextEncoder().encode('token_embd.weight');
    const at = Buffer.from(bytes).indexOf(Buffer.from(name));
    expect(at).toBeGreaterThan(0);
    const view = new DataView(bytes.buffer);
    const dims = view.getUint32(at + name.length, true);
    expect(dims).toBe(2);
    view.setUint32(at + name.length + 4 + 8 * dims, 12, true);
    const path = join(tmp, 'q4k.gguf');
    writeFileSync(path, bytes);

    const error = await loadError(path);
    expect(error).toBeInstanceOf(FormatError);
    expect(error.message).toContain(path);
    expect(error.message).toContain('token_embd.weight');
    expect(error.message).toContain('Q4_K');
  });

  it('a GPT-2 folder with a Conv1D weight in nn.Linear layout', async () => {
    const config: Gpt2Config = {
      architecture: 'gpt2', hiddenSize: 16, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2,
      headDim: 8, vocabSize: 512, layerNormEps: 1e-5, rmsNormEps: 0, ropeTheta: 0, ropeScaling: null, ropeLayout: 'halves',
      maxPositionEmbeddings: 32, tieWordEmbeddings: true, attentionBias: true, bosTokenId: null, eosTokenId: null,
    };
    const model = randomModel(config, 1);
    const dir = join(tmp, 'gpt2-transposed');
    await saveModel(model, dir);
    model.dispose();
    const file = await openSafetensors(join(dir, 'model.safetensors'));
    const record: Record<string, TensorToWrite> = {};
    for (const [tensor, info] of file.tensors) {
      const shape = tensor === 'transformer.h.0.mlp.c_fc.weight' ? [...info.shape].reverse() : [...info.shape];
      record[tensor] = { dtype: 'F32', shape, data: (await file.read(tensor, { as: 'f32' })).data };
    }
    await writeSafetensors(join(dir, 'model.safetensors'), record);
    copyFileSync(join(STORIES_HF, 'tokenizer.json'), join(dir, 'tokenizer.json'));

    const error = await loadError(dir);
    expect(error).toBeInstanceOf(FormatError);
    expect(error.message).toContain('tensor "transformer.h.0.mlp.c_fc.weight" has shape [64, 16], the config expects [16, 64]');
  });
});
