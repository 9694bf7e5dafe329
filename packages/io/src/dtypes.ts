/** Element types of safetensors files, spelled as the format spells them. */
export type Dtype =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/**
 * Typed array that holds a tensor's elements in memory. F16 and BF16 keep their raw bits in a
 * Uint16Array. F8 and BOOL keep one byte per element in a Uint8Array.
 */
export type TensorArray =
  | Float64Array | Float32Array | Uint16Array | Int16Array | Uint8Array | Int8Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

interface DtypeInfo {
  bytes: number;
  make: (buffer: ArrayBuffer, byteOffset: number, length: number) => TensorArray;
}

export const DTYPES: Record<Dtype, DtypeInfo> = {
  F64: { bytes: 8, make: (b, o, n) => new Float64Array(b, o, n) },
  F32: { bytes: 4, make: (b, o, n) => new Float32Array(b, o, n) },
  F16: { bytes: 2, make: (b, o, n) => new Uint16Array(b, o, n) },
  BF16: { bytes: 2, make: (b, o, n) => new Uint16Array(b, o, n) },
  F8_E4M3: { bytes: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
  F8_E5M2: { bytes: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
  I64: { bytes: 8, make: (b, o, n) => new BigInt64Array(b, o, n) },
  I32: { bytes: 4, make: (b, o, n) => new Int32Array(b, o, n) },
  I16: { bytes: 2, make: (b, o, n) => new Int16Array(b, o, n) },
  I8: { bytes: 1, make: (b, o, n) => new Int8Array(b, o, n) },
  U64: { bytes: 8, make: (b, o, n) => new BigUint64Array(b, o, n) },
  U32: { bytes: 4, make: (b, o, n) => new Uint32Array(b, o, n) },
  U16: { bytes: 2, make: (b, o, n) => new Uint16Array(b, o, n) },
  U8: { bytes: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
  BOOL: { bytes: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
};

export function isDtype(value: unknown): value is Dtype {
  return typeof value === 'string' && Object.hasOwn(DTYPES, value);
}

export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses each `width`-byte group in place, turning little-endian elements into host order and back. */
function swapBytes(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i + width <= bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/**
 * Views little-endian file bytes as a typed array of `dtype`. The bytes are copied when they
 * are not aligned to the element size or the host is big-endian, and taken over otherwise.
 */
export function bytesToArray(bytes: Uint8Array, dtype: Dtype): TensorArray {
  const width = DTYPES[dtype].bytes;
  let own = bytes;
  if (bytes.byteOffset % width !== 0 || !LITTLE_ENDIAN_HOST) own = bytes.slice();
  if (!LITTLE_ENDIAN_HOST) swapBytes(own, width);
  return DTYPES[dtype].make(own.buffer as ArrayBuffer, own.byteOffset, own.length / width);
}

/** Returns the little-endian bytes of a typed array (a view when the host is little-endian). */
export function arrayToBytes(array: TensorArray, width: number): Uint8Array {
  const view = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  if (LITTLE_ENDIAN_HOST) return view;
  const copy = view.slice();
  swapBytes(copy, width);
  return copy;
}

const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/** Converts IEEE 754 half-precision bits to a number, including subnormals, infinities and NaN. */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Converts a number to half-precision bits, rounding to nearest even. Overflow becomes infinity. */
export function f32ToF16(value: number): number {
  F32_SCRATCH[0] = value;
  const x = U32_SCRATCH[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;

  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: shift the mantissa with its implicit bit, then round to nearest even.
    if (e < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - e;
    let half = full >> shift;
    const rest = full & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    if (rest > midpoint || (rest === midpoint && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** Converts bfloat16 bits to a number: they are the top 16 bits of an f32. */
export function bf16ToF32(bits: number): number {
  U32_SCRATCH[0] = bits << 16;
  return F32_SCRATCH[0]!;
}

/** Converts a number to bfloat16 bits, rounding to nearest even and keeping NaN a NaN. */
export function f32ToBf16(value: number): number {
  F32_SCRATCH[0] = value;
  const x = U32_SCRATCH[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts an FP8 E4M3 (OCP "fn" variant: no infinities, 0x7f and 0xff are NaN) byte to a number. */
export function f8e4m3ToF32(byte: number): number {
  const sign = byte & 0x80 ? -1 : 1;
  const exponent = (byte >> 3) & 0xf;
  const mantissa = byte & 0x7;
  if (exponent === 0xf && mantissa === 0x7) return NaN;
  if (exponent === 0) return sign * mantissa * 2 ** -9;
  return sign * (1 + mantissa / 8) * 2 ** (exponent - 7);
}

/** Converts an FP8 E5M2 byte (the top half of an f16) to a number. */
export function f8e5m2ToF32(byte: number): number {
  return f16ToF32(byte << 8);
}

/** Converts a tensor of any dtype to f32 values. */
export function toFloat32(array: TensorArray, dtype: Dtype): Float32Array {
  if (dtype === 'F32') return array as Float32Array;
  const out = new Float32Array(array.length);
  const convert =
    dtype === 'F16' ? f16ToF32
    : dtype === 'BF16' ? bf16ToF32
    : dtype === 'F8_E4M3' ? f8e4m3ToF32
    : dtype === 'F8_E5M2' ? f8e5m2ToF32
    : undefined;
  if (convert) {
    for (let i = 0; i < out.length; i++) out[i] = convert(array[i] as number);
  } else {
    for (let i = 0; i < out.length; i++) out[i] = Number(array[i]);
  }
  return out;
}

/** Element count of a shape, which is 1 for a scalar. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
