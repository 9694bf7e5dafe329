import { FormatError, TemaError } from '@tematrainer/tensor';
import { f16ToF32, bf16ToF32 } from './dtypes.js';
import { type ByteSource, toSource } from './source.js';

/** A GGUF metadata value. 64-bit integers beyond 2^53 stay bigints, and arrays may nest. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  /** ggml type id (0 = F32, 1 = F16, 2 = Q4_0, 8 = Q8_0, ...). */
  type: number;
  /** Dimensions as stored, ne0 (the contiguous one) first. */
  dims: number[];
  /** Row-major shape: `dims` reversed, as PyTorch and safetensors write it. */
  shape: number[];
  /** Offset of the data, relative to `dataOffset`. */
  offset: number;
}

export interface GgufFile {
  source: ByteSource;
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  /** Absolute offset of the tensor data section. */
  dataOffset: number;
  /** Reads a tensor and dequantizes it to f32. */
  read(name: string): Promise<{ shape: number[]; data: Float32Array }>;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32

// Metadata value types of the GGUF specification.
const enum ValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}
const VALUE_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8]; // fixed size, or the minimum for STRING and ARRAY

/** ggml tensor types: name, elements per block, bytes per block. */
export const GGML_TYPES: Record<number, { name: string; blockSize: number; blockBytes: number }> = {
  0: { name: 'F32', blockSize: 1, blockBytes: 4 },
  1: { name: 'F16', blockSize: 1, blockBytes: 2 },
  2: { name: 'Q4_0', blockSize: 32, blockBytes: 18 },
  3: { name: 'Q4_1', blockSize: 32, blockBytes: 20 },
  6: { name: 'Q5_0', blockSize: 32, blockBytes: 22 },
  7: { name: 'Q5_1', blockSize: 32, blockBytes: 24 },
  8: { name: 'Q8_0', blockSize: 32, blockBytes: 34 },
  9: { name: 'Q8_1', blockSize: 32, blockBytes: 36 },
  10: { name: 'Q2_K', blockSize: 256, blockBytes: 84 },
  11: { name: 'Q3_K', blockSize: 256, blockBytes: 110 },
  12: { name: 'Q4_K', blockSize: 256, blockBytes: 144 },
  13: { name: 'Q5_K', blockSize: 256, blockBytes: 176 },
  14: { name: 'Q6_K', blockSize: 256, blockBytes: 210 },
  15: { name: 'Q8_K', blockSize: 256, blockBytes: 292 },
  24: { name: 'I8', blockSize: 1, blockBytes: 1 },
  25: { name: 'I16', blockSize: 1, blockBytes: 2 },
  26: { name: 'I32', blockSize: 1, blockBytes: 4 },
  27: { name: 'I64', blockSize: 1, blockBytes: 8 },
  28: { name: 'F64', blockSize: 1, blockBytes: 8 },
  30: { name: 'BF16', blockSize: 1, blockBytes: 2 },
};

export function ggmlTypeName(type: number): string {
  return GGML_TYPES[type]?.name ?? `type ${type}`;
}

const MAX_NESTING = 16;
const MAX_DIMS = 8;

/** Raised inside the header parser when the bytes read so far end before the header does. */
class NeedMoreBytes extends Error {}

/** Synchronous little-endian reader over the first bytes of a file. `fileSize` bounds every count. */
class HeaderReader {
  pos = 0;
  private view: DataView;
  private decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(
    private bytes: Uint8Array,
    private fileSize: number,
    readonly file: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Checks that `count` items of at least `minBytes` each can fit in the rest of the file. */
  checkCount(count: bigint, minBytes: number, what: string): number {
    const left = this.fileSize - this.pos;
    if (count * BigInt(minBytes) > BigInt(left)) {
      throw new FormatError(`${this.file}: ${what} is ${count}, which cannot fit in the ${left} bytes left at offset ${this.pos}`);
    }
    return Number(count);
  }

  private take(n: number): number {
    if (this.pos + n > this.fileSize) {
      throw new FormatError(`${this.file}: header ends at byte ${this.fileSize} while reading ${n} bytes at offset ${this.pos} — is the file truncated?`);
    }
    if (this.pos + n > this.bytes.length) throw new NeedMoreBytes();
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(): number { return this.view.getUint8(this.take(1)); }
  i8(): number { return this.view.getInt8(this.take(1)); }
  u16(): number { return this.view.getUint16(this.take(2), true); }
  i16(): number { return this.view.getInt16(this.take(2), true); }
  u32(): number { return this.view.getUint32(this.take(4), true); }
  i32(): number { return this.view.getInt32(this.take(4), true); }
  f32(): number { return this.view.getFloat32(this.take(4), true); }
  f64(): number { return this.view.getFloat64(this.take(8), true); }
  u64(): bigint { return this.view.getBigUint64(this.take(8), true); }
  i64(): bigint { return this.view.getBigInt64(this.take(8), true); }

  string(what: string): string {
    const length = this.checkCount(this.u64(), 1, `length of ${what}`);
    const at = this.take(length);
    try {
      return this.decoder.decode(this.bytes.subarray(at, at + length));
    } catch {
      throw new FormatError(`${this.file}: ${what} at offset ${at} is not valid UTF-8`);
    }
  }
}

function smallest(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function readValue(r: HeaderReader, type: number, key: string, depth: number): GgufValue {
  switch (type) {
    case ValueType.UINT8: return r.u8();
    case ValueType.INT8: return r.i8();
    case ValueType.UINT16: return r.u16();
    case ValueType.INT16: return r.i16();
    case ValueType.UINT32: return r.u32();
    case ValueType.INT32: return r.i32();
    case ValueType.FLOAT32: return r.f32();
    case ValueType.FLOAT64: return r.f64();
    case ValueType.UINT64: return smallest(r.u64());
    case ValueType.INT64: return smallest(r.i64());
    case ValueType.BOOL: {
      const byte = r.u8();
      if (byte > 1) throw new FormatError(`${r.file}: metadata "${key}" is a bool with byte value ${byte}, expected 0 or 1`);
      return byte === 1;
    }
    case ValueType.STRING: return r.string(`string value of "${key}"`);
    case ValueType.ARRAY: {
      if (depth >= MAX_NESTING) throw new FormatError(`${r.file}: metadata "${key}" nests arrays deeper than ${MAX_NESTING} levels`);
      const itemType = r.u32();
      if (itemType >= VALUE_BYTES.length) throw new FormatError(`${r.file}: metadata "${key}" is an array of unknown value type ${itemType}`);
      const count = r.checkCount(r.u64(), VALUE_BYTES[itemType]!, `element count of "${key}"`);
      const items: GgufValue[] = new Array(count);
      for (let i = 0; i < count; i++) items[i] = readValue(r, itemType, key, depth + 1);
      return items;
    }
    default:
      throw new FormatError(`${r.file}: metadata "${key}" has unknown value type ${type}`);
  }
}

interface ParsedHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  headerEnd: number;
}

function parseHeader(r: HeaderReader, file: string): ParsedHeader {
  const magic = r.u32();
  if (magic !== GGUF_MAGIC) throw new FormatError(`${file}: bad magic 0x${magic.toString(16).padStart(8, '0')}, expected "GGUF" — is this a GGUF file?`);
  const version = r.u32();
  if (version !== 2 && version !== 3) {
    throw new FormatError(`${file}: GGUF version ${version} is not supported (expected 2 or 3; convert version 1 files with a current llama.cpp)`);
  }

  // The smallest tensor info is a 1-byte name (8 + 1), one dimension (4 + 8), type (4) and offset (8).
  const tensorCount = r.checkCount(r.u64(), 33, 'tensor count');
  // The smallest key-value pair is a 1-byte key (8 + 1), its type (4) and a 1-byte value.
  const kvCount = r.checkCount(r.u64(), 14, 'metadata key-value count');

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = r.string(`key of metadata entry ${i}`);
    const type = r.u32();
    metadata.set(key, readValue(r, type, key, 0));
  }

  const tensors = new Map<string, GgufTensorInfo>();
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string(`name of tensor ${i}`);
    const nDims = r.u32();
    if (nDims > MAX_DIMS) throw new FormatError(`${file}: tensor "${name}" has ${nDims} dimensions, at most ${MAX_DIMS} are allowed`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const dim = r.u64();
      if (dim > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${file}: tensor "${name}" dimension ${d} is ${dim}, too large`);
      dims.push(Number(dim));
    }
    const type = r.u32();
    const offset = r.u64();
    if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${file}: tensor "${name}" offset ${offset} is too large`);
    if (tensors.has(name)) throw new FormatError(`${file}: tensor "${name}" appears twice`);
    tensors.set(name, { type, dims, shape: [...dims].reverse(), offset: Number(offset) });
  }
  return { version, metadata, tensors, headerEnd: r.pos };
}

/** Returns the byte size of a tensor, or undefined for ggml types this reader does not know. */
function tensorBytes(file: string, name: string, info: GgufTensorInfo): number | undefined {
  const layout = GGML_TYPES[info.type];
  if (!layout) return undefined;
  const count = info.dims.reduce((a, b) => a * b, 1);
  if ((info.dims[0] ?? 1) % layout.blockSize !== 0) {
    throw new FormatError(`${file}: tensor "${name}" of type ${layout.name} has ne0 = ${info.dims[0]}, not a multiple of its block size ${layout.blockSize}`);
  }
  return (count / layout.blockSize) * layout.blockBytes;
}

/**
 * Opens a GGUF file (versions 2 and 3): parses the metadata and tensor table and checks that
 * every tensor lies inside the file. Tensor data is read on demand with `read`.
 */
export async function openGguf(input: string | ByteSource): Promise<GgufFile> {
  const source = await toSource(input);
  const file = source.name;

  // The header is parsed from the first bytes of the file. When it is longer than what was
  // read, the read size doubles and the parse starts again.
  let parsed: ParsedHeader | undefined;
  for (let length = Math.min(source.size, 1 << 20); !parsed; length = Math.min(source.size, length * 2)) {
    try {
      parsed = parseHeader(new HeaderReader(await source.read(0, length), source.size, file), file);
    } catch (error) {
      if (!(error instanceof NeedMoreBytes) || length === source.size) throw error;
    }
  }
  const { version, metadata, tensors, headerEnd } = parsed;

  const alignmentValue = metadata.get('general.alignment') ?? 32;
  if (typeof alignmentValue !== 'number' || !Number.isInteger(alignmentValue) || alignmentValue <= 0 || alignmentValue % 8 !== 0) {
    throw new FormatError(`${file}: general.alignment must be a positive multiple of 8, found ${String(alignmentValue)}`);
  }
  const alignment = alignmentValue;
  const dataOffset = Math.ceil(headerEnd / alignment) * alignment;

  const sizes = new Map<string, number>();
  for (const [name, info] of tensors) {
    if (info.offset % alignment !== 0) {
      throw new FormatError(`${file}: tensor "${name}" offset ${info.offset} is not a multiple of the alignment ${alignment}`);
    }
    const size = tensorBytes(file, name, info);
    if (size === undefined) continue;
    if (dataOffset + info.offset + size > source.size) {
      throw new FormatError(
        `${file}: tensor "${name}" (${size} bytes at data offset ${info.offset}) ends past the end of the file (${source.size} bytes) — is it truncated?`,
      );
    }
    sizes.set(name, size);
  }

  async function read(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    const info = tensors.get(name);
    if (!info) throw new TemaError(`${file}: no tensor named "${name}"`);
    const size = sizes.get(name);
    if (size === undefined || !DEQUANTIZE[info.type]) {
      throw new FormatError(`${file}: tensor "${name}" has ggml type ${ggmlTypeName(info.type)}, which this reader cannot dequantize (supported: F32, F16, BF16, Q8_0, Q4_0)`);
    }
    const bytes = await source.read(dataOffset + info.offset, size);
    return { shape: [...info.shape], data: DEQUANTIZE[info.type]!(bytes) };
  }

  return { source, version, metadata, tensors, alignment, dataOffset, read };
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const DEQUANTIZE: Record<number, (bytes: Uint8Array) => Float32Array> = {
  0: (bytes) => {
    const view = viewOf(bytes);
    const out = new Float32Array(bytes.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  },
  1: (bytes) => {
    const view = viewOf(bytes);
    const out = new Float32Array(bytes.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
    return out;
  },
  30: (bytes) => {
    const view = viewOf(bytes);
    const out = new Float32Array(bytes.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = bf16ToF32(view.getUint16(i * 2, true));
    return out;
  },
  // Q8_0 block (34 bytes): f16 scale d, then 32 int8 quants, and value = q * d.
  8: (bytes) => {
    const view = viewOf(bytes);
    const blocks = bytes.length / 34;
    const out = new Float32Array(blocks * 32);
    for (let b = 0; b < blocks; b++) {
      const d = f16ToF32(view.getUint16(b * 34, true));
      for (let i = 0; i < 32; i++) out[b * 32 + i] = view.getInt8(b * 34 + 2 + i) * d;
    }
    return out;
  },
  // Q4_0 block (18 bytes): f16 scale d, then 16 bytes whose low nibbles are elements 0..15 and
  // high nibbles elements 16..31, and value = (q - 8) * d.
  2: (bytes) => {
    const view = viewOf(bytes);
    const blocks = bytes.length / 18;
    const out = new Float32Array(blocks * 32);
    for (let b = 0; b < blocks; b++) {
      const d = f16ToF32(view.getUint16(b * 18, true));
      for (let i = 0; i < 16; i++) {
        const byte = bytes[b * 18 + 2 + i]!;
        out[b * 32 + i] = ((byte & 0x0f) - 8) * d;
        out[b * 32 + 16 + i] = ((byte >> 4) - 8) * d;
      }
    }
    return out;
  },
};
