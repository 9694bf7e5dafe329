import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FormatError, TemaError } from '@tematrainer/tensor';
import { openSafetensors, type ReadAs, type ReadTensor, type SafetensorsEntry, type SafetensorsFile, type TensorStore } from './safetensors.js';

/** Location of one tensor of a sharded set, with `file` as the shard's path. */
export interface ShardedEntry extends SafetensorsEntry {
  file: string;
}

export interface ShardedSafetensors extends TensorStore {
  tensors: Map<string, ShardedEntry>;
  /** The shards by path, opened once each. */
  shards: Map<string, SafetensorsFile>;
}

/**
 * Opens a sharded checkpoint through its `model.safetensors.index.json`, whose `weight_map`
 * maps each tensor name to a shard file in the same folder. `metadata` is the index's
 * `metadata` object with values as strings (for example `total_size`).
 */
export async function openShardedSafetensors(indexPath: string): Promise<ShardedSafetensors> {
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (error) {
    if (error instanceof SyntaxError) throw new FormatError(`${indexPath}: not valid JSON (${error.message})`);
    throw error;
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new FormatError(`${indexPath}: expected an object "weight_map" mapping tensor names to shard files`);
  }

  const metadata: Record<string, string> = {};
  const indexMetadata = (index as { metadata?: unknown }).metadata;
  if (typeof indexMetadata === 'object' && indexMetadata !== null) {
    for (const [key, value] of Object.entries(indexMetadata)) metadata[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }

  const folder = dirname(indexPath);
  const shards = new Map<string, SafetensorsFile>();
  const tensors = new Map<string, ShardedEntry>();
  for (const [name, shardName] of Object.entries(weightMap)) {
    if (typeof shardName !== 'string' || shardName.includes('/') || shardName.includes('\\') || shardName === '..') {
      throw new FormatError(`${indexPath}: weight_map["${name}"] must be a file name in the same folder, found ${JSON.stringify(shardName)}`);
    }
    const shardPath = join(folder, shardName);
    let shard = shards.get(shardPath);
    if (!shard) {
      shard = await openSafetensors(shardPath);
      shards.set(shardPath, shard);
    }
    const entry = shard.tensors.get(name);
    if (!entry) throw new FormatError(`${indexPath}: weight_map puts "${name}" in ${shardName}, but that shard has no such tensor`);
    tensors.set(name, { ...entry, file: shardPath });
  }

  async function read(name: string, options: { as?: ReadAs } = {}): Promise<ReadTensor> {
    const entry = tensors.get(name);
    if (!entry) throw new TemaError(`${indexPath}: no tensor named "${name}" in weight_map`);
    return shards.get(entry.file)!.read(name, options);
  }

  return { metadata, tensors, shards, read: read as TensorStore['read'] };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Opens the weights of a Hugging Face model folder: `model.safetensors`, or else `model.safetensors.index.json`. */
export async function openModelWeights(folder: string): Promise<TensorStore> {
  const single = join(folder, 'model.safetensors');
  if (await isFile(single)) return openSafetensors(single);
  const index = join(folder, 'model.safetensors.index.json');
  if (await isFile(index)) return openShardedSafetensors(index);
  throw new TemaError(`${folder}: found neither model.safetensors nor model.safetensors.index.json — is this a Hugging Face model folder?`);
}
