/**
 * Double quantization (QLoRA's "double quant", bitsandbytes' `compress_statistics=True`): the NF4
 * absmax values are shifted by their mean and quantized again, 8 bits each, blockwise with
 * bitsandbytes' signed dynamic map.
 */

/** Block size of the second quantization, fixed at 256 by bitsandbytes' `quantize_4bit`. */
export const DOUBLE_QUANT_BLOCK_SIZE = 256;

/**
 * The 256 values of bitsandbytes' `create_dynamic_map(signed=True, max_exponent_bits=7,
 * total_bits=8)`, sorted ascending: for each exponent i = 0..6 the 2^i midpoints of
 * linspace(0.1, 1, 2^i + 1), times 10^(i - 6), with both signs; then 0 and 1. bitsandbytes
 * builds the map in float32 torch ops, so these values may differ from its map in the last bit.
 */
export function createDynamicMap(): Float32Array {
  const maxExponentBits = 7;
  const values: number[] = [];
  for (let i = 0; i < maxExponentBits; i++) {
    const fractionItems = 2 ** i + 1;
    const scale = 10 ** (i - (maxExponentBits - 1));
    for (let j = 0; j + 1 < fractionItems; j++) {
      const left = 0.1 + (0.9 * j) / (fractionItems - 1);
      const right = 0.1 + (0.9 * (j + 1)) / (fractionItems - 1);
      const mean = (left + right) / 2;
      values.push(scale * mean, -scale * mean);
    }
  }
  values.push(0, 1);
  values.sort((a, b) => a - b);
  return Float32Array.from(values);
}

export const DYNAMIC_MAP: Float32Array = createDynamicMap();

/** Index of the map value nearest to `scaled` (the lower one on a tie); the map is sorted. */
export function nearestDynamicCode(scaled: number, map: Float32Array = DYNAMIC_MAP): number {
  let lo = 0;
  let hi = map.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (map[mid] <= scaled) lo = mid;
    else hi = mid;
  }
  return Math.abs(scaled - map[lo]) <= Math.abs(map[hi] - scaled) ? lo : hi;
}

/** NF4 absmax values stored in 8 bits: absmax ≈ DYNAMIC_MAP[qabsmax[b]] · absmax2[b / 256] + offset. */
export interface DoubleQuantized {
  qabsmax: Uint8Array;
  /** absmax of each block of 256 shifted values. */
  absmax2: Float32Array;
  /** Mean of the original absmax values. */
  offset: number;
}

/** Quantize absmax values as bitsandbytes does with `bnb_4bit_use_double_quant=True`. */
export function doubleQuantize(absmax: Float32Array): DoubleQuantized {
  const n = absmax.length;
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = Math.fround(n === 0 ? 0 : sum / n);

  const blocks = Math.ceil(n / DOUBLE_QUANT_BLOCK_SIZE);
  const absmax2 = new Float32Array(blocks);
  const qabsmax = new Uint8Array(n);
  for (let b = 0; b < blocks; b++) {
    const start = b * DOUBLE_QUANT_BLOCK_SIZE;
    const end = Math.min(n, start + DOUBLE_QUANT_BLOCK_SIZE);
    let max = 0;
    for (let i = start; i < end; i++) max = Math.max(max, Math.abs(Math.fround(absmax[i] - offset)));
    absmax2[b] = max;
    for (let i = start; i < end; i++) {
      const shifted = Math.fround(absmax[i] - offset);
      qabsmax[i] = max === 0 ? nearestDynamicCode(0) : nearestDynamicCode(Math.fround(shifted / max));
    }
  }
  return { qabsmax, absmax2, offset };
}

/** Recover the absmax values (float32) from their double-quantized form. */
export function doubleDequantize(q: DoubleQuantized): Float32Array {
  const out = new Float32Array(q.qabsmax.length);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.fround(DYNAMIC_MAP[q.qabsmax[i]] * q.absmax2[Math.floor(i / DOUBLE_QUANT_BLOCK_SIZE)]) + q.offset;
  }
  return out;
}
