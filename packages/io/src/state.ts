import { readFile } from 'node:fs/promises';
import { FormatError, TemaError } from '@tematrainer/tensor';
import { Packr } from 'msgpackr';
import { writeFileAtomic } from './atomic.js';
import { arrayToBytes, bytesToArray, DTYPES, type Dtype, isDtype, numel, type TensorArray } from './dtypes.js';
import { toStoredArray } from './safetensors.js';

/** A tensor inside trainer state, in memory. */
export interface StateTensor {
  dtype: Dtype;
  shape: number[];
  data: TensorArray;
}

/** Marks a msgpack file as trainer state written by this package. */
export const TRAINER_STATE_FORMAT = 'tematrainer-state';
const STATE_VERSION = 1;

// Plain maps keep object keys and values as msgpack maps that Python's msgpack reads too.
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'bigint', mapsAsObjects: true });

const TYPED_ARRAY_DTYPES: [new (n: number) => TensorArray, Dtype][] = [
  [Float64Array, 'F64'], [Float32Array, 'F32'], [Int32Array, 'I32'], [Uint32Array, 'U32'],
  [Int16Array, 'I16'], [Int8Array, 'I8'], [BigInt64Array, 'I64'], [BigUint64Array, 'U64'],
];

function isTensorLike(value: object): value is StateTensor {
  const record = value as Record<string, unknown>;
  return isDtype(record['dtype']) && Array.isArray(record['shape']) && ArrayBuffer.isView(record['data']) && Object.keys(value).length === 3;
}

/** Replaces tensors by `{dtype, shape, data: little-endian bytes}` records, and passes other values through. */
function encodeValue(value: unknown, path: string): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return value;

  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    // A bare typed array becomes a 1-D tensor record and is read back as one.
    const entry = TYPED_ARRAY_DTYPES.find(([type]) => value instanceof type);
    if (!entry) throw new TemaError(`trainer state: ${path} is a ${value.constructor.name}, which has no tensor dtype`);
    return encodeValue({ dtype: entry[1], shape: [(value as TensorArray).length], data: value }, path);
  }
  if (isTensorLike(value)) {
    const stored = toStoredArray(`trainer state: ${path}`, value);
    return { dtype: value.dtype, shape: [...value.shape], data: arrayToBytes(stored, DTYPES[value.dtype].bytes) };
  }
  if (Array.isArray(value)) return value.map((item, i) => encodeValue(item, `${path}[${i}]`));
  if (value instanceof Map) throw new TemaError(`trainer state: ${path} is a Map; use a plain object`);

  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = encodeValue(item, `${path}.${key}`);
  return out;
}

function decodeValue(value: unknown, path: string, file: string): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map((item, i) => decodeValue(item, `${path}[${i}]`, file));

  const record = value as Record<string, unknown>;
  const data = record['data'];
  if (isDtype(record['dtype']) && Array.isArray(record['shape']) && data instanceof Uint8Array && Object.keys(record).length === 3) {
    const dtype = record['dtype'];
    const shape = record['shape'];
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new FormatError(`${file}: ${path}.shape is ${JSON.stringify(shape)}, expected non-negative integers`);
    const expected = numel(shape as number[]) * DTYPES[dtype].bytes;
    if (data.length !== expected) {
      throw new FormatError(`${file}: ${path} has shape ${JSON.stringify(shape)} of ${dtype} (${expected} bytes), but holds ${data.length} bytes`);
    }
    // Node returns Buffer views into the whole file here, so copy before viewing as a typed array.
    return { dtype, shape, data: bytesToArray(new Uint8Array(data), dtype) };
  }

  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(record)) out[key] = decodeValue(item, `${path}.${key}`, file);
  return out;
}

/** Encodes trainer state as msgpack bytes. */
export function encodeTrainerState(state: Record<string, unknown>): Uint8Array {
  return packr.pack({ format: TRAINER_STATE_FORMAT, version: STATE_VERSION, state: encodeValue(state, 'state') });
}

/** Decodes bytes written by `encodeTrainerState`. `file` names the input in errors. */
export function decodeTrainerState(bytes: Uint8Array, file: string): Record<string, unknown> {
  let top: unknown;
  try {
    top = packr.unpack(bytes);
  } catch (error) {
    throw new FormatError(`${file}: not valid msgpack (${(error as Error).message})`);
  }
  const record = top as Record<string, unknown> | null;
  if (typeof record !== 'object' || record === null || record['format'] !== TRAINER_STATE_FORMAT) {
    throw new FormatError(`${file}: not a trainer state file (expected a msgpack map with format "${TRAINER_STATE_FORMAT}")`);
  }
  if (record['version'] !== STATE_VERSION) {
    throw new FormatError(`${file}: trainer state version ${String(record['version'])} is not supported (expected ${STATE_VERSION})`);
  }
  const state = record['state'];
  if (typeof state !== 'object' || state === null || Array.isArray(state)) throw new FormatError(`${file}: "state" must be a map`);
  return decodeValue(state, 'state', file) as Record<string, unknown>;
}

/**
 * Writes trainer state (step, epoch, data position, RNG state, config, optimizer moments, EMA
 * weights, ...) to a msgpack file, atomically. Tensors, given as `{dtype, shape, data}` with a
 * typed array or as bare typed arrays, are stored as `{dtype, shape, data: bytes}` with
 * little-endian bytes. Maps, class instances and functions are not supported.
 */
export async function writeTrainerState(path: string, state: Record<string, unknown>): Promise<void> {
  await writeFileAtomic(path, encodeTrainerState(state));
}

/** Reads trainer state. Tensors come back as `{dtype, shape, data}` with typed arrays (bare typed arrays as 1-D tensors). */
export async function readTrainerState(path: string): Promise<Record<string, unknown>> {
  return decodeTrainerState(await readFile(path), path);
}
