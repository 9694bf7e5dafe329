import { FormatError, TemaError } from '@tematrainer/tensor';
import { writeFileAtomic } from './atomic.js';
import { arrayToBytes, bytesToArray, DTYPES, type Dtype, f32ToBf16, f32ToF16, isDtype, numel, type TensorArray, toFloat32 } from './dtypes.js';
import { type ByteSource, toSource } from './source.js';

/** Location of one tensor in a safetensors file, with `begin` and `end` as absolute file offsets. */
export interface SafetensorsEntry {
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

/** `native` keeps the stored dtype, `f32` converts any dtype, `i32` converts integers with a range check. */
export type ReadAs = 'native' | 'f32' | 'i32';

export interface ReadTensor<T extends TensorArray = TensorArray> {
  dtype: Dtype;
  shape: number[];
  data: T;
}

/** Named tensors with lazy reads: one safetensors file or a sharded set. */
export interface TensorStore {
  metadata: Record<string, string>;
  tensors: Map<string, SafetensorsEntry>;
  read(name: string, options: { as: 'f32' }): Promise<ReadTensor<Float32Array>>;
  read(name: string, options: { as: 'i32' }): Promise<ReadTensor<Int32Array>>;
  read(name: string, options?: { as?: ReadAs }): Promise<ReadTensor>;
}

export interface SafetensorsFile extends TensorStore {
  source: ByteSource;
  /** Bytes of the JSON header, without the 8-byte length prefix. */
  headerLength: number;
}

// The reference implementation (huggingface/safetensors) rejects headers over 100 MB too.
const MAX_HEADER_BYTES = 100_000_000;
const MAX_DIMS = 64;

/** Converts a tensor read in its stored dtype as the caller requested. */
export function convertTensor(fileName: string, name: string, tensor: ReadTensor, as: ReadAs): ReadTensor {
  if (as === 'native') return tensor;
  if (as === 'f32') return { dtype: 'F32', shape: tensor.shape, data: toFloat32(tensor.data, tensor.dtype) };

  const { dtype, data } = tensor;
  if (dtype === 'I32') return tensor;
  if (!['I64', 'U64', 'U32', 'I16', 'I8', 'U16', 'U8', 'BOOL'].includes(dtype)) {
    throw new TemaError(`${fileName}: tensor "${name}" has dtype ${dtype}; only integer tensors can be read as i32`);
  }
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const value = Number(data[i]);
    if (value < -0x80000000 || value > 0x7fffffff) {
      throw new FormatError(`${fileName}: tensor "${name}" element ${i} is ${data[i]}, which does not fit in int32`);
    }
    out[i] = value;
  }
  return { dtype: 'I32', shape: tensor.shape, data: out };
}

function parseHeaderJson(file: string, bytes: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FormatError(`${file}: the safetensors header is not valid UTF-8`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new FormatError(`${file}: the safetensors header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new FormatError(`${file}: the safetensors header must be a JSON object`);
  }
  return json as Record<string, unknown>;
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FormatError(`${file}: "__metadata__" must be an object of strings`);
  }
  const metadata: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      throw new FormatError(`${file}: "__metadata__.${key}" must be a string, found ${JSON.stringify(item)}`);
    }
    metadata[key] = item;
  }
  return metadata;
}

function parseEntry(file: string, name: string, value: unknown, dataStart: number, dataSize: number): SafetensorsEntry {
  const where = `${file}: tensor "${name}"`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FormatError(`${where}: expected an object with dtype, shape and data_offsets`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;

  if (!isDtype(dtype)) throw new FormatError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || shape.length > MAX_DIMS || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new FormatError(`${where}: shape must be a list of at most ${MAX_DIMS} non-negative integers, found ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new FormatError(`${where}: data_offsets must be two non-negative integers, found ${JSON.stringify(offsets)}`);
  }

  const [begin, end] = offsets as [number, number];
  if (begin > end || end > dataSize) {
    throw new FormatError(`${where}: data_offsets [${begin}, ${end}] are outside the data section of ${dataSize} bytes`);
  }
  const expected = numel(shape) * DTYPES[dtype].bytes;
  if (expected !== end - begin) {
    throw new FormatError(
      `${where}: shape ${JSON.stringify(shape)} of ${dtype} needs ${expected} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  return { dtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end };
}

/**
 * Opens a safetensors file and parses its header: an 8-byte little-endian header length, a
 * JSON header, then the tensor bytes. Tensors are read one at a time with `read`.
 */
export async function openSafetensors(input: string | ByteSource): Promise<SafetensorsFile> {
  const source = await toSource(input);
  const file = source.name;

  if (source.size < 8) throw new FormatError(`${file}: ${source.size} bytes is too short for a safetensors file (8-byte header length missing)`);
  const prefix = await source.read(0, 8);
  const headerLength64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (headerLength64 > BigInt(MAX_HEADER_BYTES)) {
    throw new FormatError(`${file}: header length ${headerLength64} exceeds the limit of ${MAX_HEADER_BYTES} bytes — is this a safetensors file?`);
  }
  const headerLength = Number(headerLength64);
  if (8 + headerLength > source.size) {
    throw new FormatError(`${file}: header length ${headerLength} runs past the end of the file (${source.size} bytes)`);
  }

  const header = parseHeaderJson(file, await source.read(8, headerLength));
  const dataStart = 8 + headerLength;
  const dataSize = source.size - dataStart;
  const metadata = parseMetadata(file, header['__metadata__']);

  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    tensors.set(name, parseEntry(file, name, value, dataStart, dataSize));
  }

  // Tensors may not share bytes. Empty tensors take none and are left out of the check.
  const byOffset = [...tensors].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < byOffset.length; i++) {
    const [prevName, prev] = byOffset[i - 1]!;
    const [name, entry] = byOffset[i]!;
    if (entry.begin < prev.end) {
      throw new FormatError(`${file}: tensor "${name}" overlaps tensor "${prevName}" (bytes ${entry.begin - dataStart} < ${prev.end - dataStart})`);
    }
  }

  async function read(name: string, options: { as?: ReadAs } = {}): Promise<ReadTensor> {
    const entry = tensors.get(name);
    if (!entry) throw new TemaError(`${file}: no tensor named "${name}"`);
    const bytes = await source.read(entry.begin, entry.end - entry.begin);
    const tensor: ReadTensor = { dtype: entry.dtype, shape: [...entry.shape], data: bytesToArray(bytes, entry.dtype) };
    return convertTensor(file, name, tensor, options.as ?? 'native');
  }

  return { source, headerLength, metadata, tensors, read: read as TensorStore['read'] };
}

/** A tensor to write. F16 and BF16 accept raw bits (Uint16Array) or f32 values, which are rounded. */
export interface TensorToWrite {
  dtype: Dtype;
  shape: readonly number[];
  data: TensorArray | readonly number[];
}

const ARRAY_TYPES: Record<Dtype, string[]> = {
  F64: ['Float64Array'],
  F32: ['Float32Array'],
  F16: ['Uint16Array'],
  BF16: ['Uint16Array'],
  F8_E4M3: ['Uint8Array'],
  F8_E5M2: ['Uint8Array'],
  I64: ['BigInt64Array'],
  I32: ['Int32Array'],
  I16: ['Int16Array'],
  I8: ['Int8Array'],
  U64: ['BigUint64Array'],
  U32: ['Uint32Array'],
  U16: ['Uint16Array'],
  U8: ['Uint8Array'],
  BOOL: ['Uint8Array'],
};

/** Converts the caller's data to the typed array that stores `dtype`, checking its length. */
export function toStoredArray(where: string, tensor: TensorToWrite): TensorArray {
  const { dtype, shape, data } = tensor;
  if (!isDtype(dtype)) throw new TemaError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
  const count = numel(shape);
  if (data.length !== count) {
    throw new TemaError(`${where}: shape ${JSON.stringify(shape)} has ${count} elements, but the data has ${data.length}`);
  }

  const typeName = (data as object).constructor.name;
  if (ARRAY_TYPES[dtype].includes(typeName)) return data as TensorArray;

  const values = data as ArrayLike<number | bigint>;
  if (dtype === 'F16' || dtype === 'BF16') {
    const round = dtype === 'F16' ? f32ToF16 : f32ToBf16;
    const out = new Uint16Array(count);
    for (let i = 0; i < count; i++) out[i] = round(Number(values[i]));
    return out;
  }
  const info = DTYPES[dtype];
  const out = info.make(new ArrayBuffer(count * info.bytes), 0, count);
  const big = dtype === 'I64' || dtype === 'U64';
  for (let i = 0; i < count; i++) {
    const value = values[i]!;
    (out as unknown as (number | bigint)[])[i] = big ? BigInt(value) : Number(value);
  }
  return out;
}

/**
 * Serializes tensors to safetensors as a list of byte chunks (header, then each tensor), so
 * large tensors are not copied into one buffer. Tensors keep the insertion order of `tensors`,
 * both in the header and in the data. The header is padded with spaces to a multiple of 8
 * bytes, as the reference implementation does.
 */
// NOTE: with mixed dtypes a tensor may start at an offset that is not a multiple of its element
// size. This package's reader copies such tensors, but a zero-copy reader would need tensors
// ordered by element size, as the reference implementation writes them.
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header['__metadata__'] = metadata;

  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new TemaError(`safetensors: "__metadata__" is reserved and cannot name a tensor`);
    const stored = toStoredArray(`tensor "${name}"`, tensor);
    const bytes = arrayToBytes(stored, DTYPES[tensor.dtype].bytes);
    header[name] = { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const prefix = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(padded), true);
  prefix.set(json, 8);
  return [prefix, ...chunks];
}

/** Writes a safetensors file atomically (temporary file, fsync, rename). See `encodeSafetensors` for the layout. */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
