import { ConfigError } from '@tematrainer/tensor';

/**
 * The 16 NF4 code values of bitsandbytes (`get_4bit_type("nf4")`, from
 * `create_normal_map(offset=0.9677083, use_extra_value=True)`): quantiles of N(0, 1) scaled to
 * [-1, 1], with an exact zero at code 7. Every literal is exactly representable as float32.
 */
export const NF4_VALUES: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
];

/**
 * Decision edges of bitsandbytes' `dQuantizeNF4`: a scaled value x gets code k + 1 when
 * x > NF4_THRESHOLDS[k] (strict), where the edge is the midpoint of codes k and k + 1. The CUDA
 * kernel compares in float32, so the edges are rounded to float32 here too.
 */
export const NF4_THRESHOLDS: readonly number[] = [
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
  -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
  0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
  0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
].map(Math.fround);

/** Block sizes bitsandbytes' `quantize_4bit` accepts. */
export const NF4_BLOCK_SIZES: readonly number[] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/** Default block size of bitsandbytes' `quantize_4bit`. */
export const NF4_DEFAULT_BLOCK_SIZE = 64;

/** A tensor quantized to NF4: two codes per byte, one absmax per block of the flattened values. */
export interface Nf4Quantized {
  /** ceil(n / 2) bytes; element 2j is the high nibble of byte j, element 2j + 1 the low nibble. */
  codes: Uint8Array;
  /** max |value| of each block of `blocksize` consecutive values; the last block may be shorter. */
  absmax: Float32Array;
}

export function checkBlockSize(blocksize: number, where = 'blocksize'): void {
  if (!NF4_BLOCK_SIZES.includes(blocksize)) {
    throw new ConfigError(`${where}: expected one of ${NF4_BLOCK_SIZES.join(', ')} (as bitsandbytes), found ${blocksize}`);
  }
}

/** Code of one value already divided by its block's absmax: the first edge it is not above. */
export function nf4Code(scaled: number): number {
  let code = 0;
  while (code < 15 && scaled > NF4_THRESHOLDS[code]) code++;
  return code;
}

/**
 * Quantize `values` to NF4 as bitsandbytes' `quantize_4bit(quant_type="nf4")` does. The flattened
 * values are cut into blocks of `blocksize`, the last one shorter when the length is not a
 * multiple. Each block is divided by its absmax, and each scaled value gets the code of its bin.
 *
 * Two choices differ from bitsandbytes' CUDA kernel where it has no meaningful answer: an all-zero
 * block (absmax 0) gets code 7, the exact zero, where the kernel's 0 · (1/0) is NaN and lands on
 * code 0 (both dequantize to 0); and values are divided by the absmax rather than multiplied by
 * its float32 reciprocal, which overflows for a subnormal absmax. Both agree up to the last bit of
 * the scaled value.
 */
export function quantizeNf4(values: Float32Array, blocksize = NF4_DEFAULT_BLOCK_SIZE): Nf4Quantized {
  checkBlockSize(blocksize);
  const n = values.length;
  const blocks = Math.ceil(n / blocksize);
  const absmax = new Float32Array(blocks);
  const codes = new Uint8Array(Math.ceil(n / 2));

  for (let b = 0; b < blocks; b++) {
    const start = b * blocksize;
    const end = Math.min(n, start + blocksize);
    let max = 0;
    for (let i = start; i < end; i++) max = Math.max(max, Math.abs(values[i]));
    absmax[b] = max;

    for (let i = start; i < end; i++) {
      const code = max === 0 ? 7 : nf4Code(Math.fround(values[i] / max));
      codes[i >> 1] |= i % 2 === 0 ? code << 4 : code;
    }
  }
  return { codes, absmax };
}

/** Return the 4-bit code of element i of packed NF4 bytes (high nibble first). */
export function nf4CodeAt(codes: Uint8Array, i: number): number {
  const byte = codes[i >> 1];
  return i % 2 === 0 ? byte >> 4 : byte & 0x0f;
}

/** Dequantize n values on the CPU: code value times its block's absmax, rounded to float32. */
export function dequantizeNf4(quantized: Nf4Quantized, n: number, blocksize = NF4_DEFAULT_BLOCK_SIZE): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = NF4_VALUES[nf4CodeAt(quantized.codes, i)] * quantized.absmax[Math.floor(i / blocksize)];
  return out;
}
