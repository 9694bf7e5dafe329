import { ShapeError } from '../errors.js';
import { empty, fromData, recordOp, type Tensor } from '../tensor.js';
import { expectF32, grid, kernel, run } from './util.js';

const ROPE = kernel('rope', 'main', 'rrw');

export type RopeLayout = 'halves' | 'pairs';

export interface RopeOptions {
  /** 'halves': Hugging Face's rotate_half, pair (i, i + d/2); 'pairs': llama2.c and GGUF, pair (2i, 2i+1). */
  layout: RopeLayout;
  /** [rotaryDim / 2] inverse frequencies, from `ropeInverseFrequencies`. */
  invFreq: Tensor;
  /** Position of the first row of each sequence (the KV-cache length during generation). */
  start?: number;
}

/**
 * Rotary position embedding of x [batch, seq, heads, headDim] (or [batch, seq, heads * headDim]
 * with `heads` given), row t of each sequence at position start + t.
 */
export function rope(x: Tensor, heads: number, headDim: number, options: RopeOptions): Tensor {
  expectF32('rope', x);
  const { layout, invFreq, start = 0 } = options;
  const seq = x.shape.length >= 3 ? x.shape[1] : x.shape[0];
  const rows = x.size / (heads * headDim);
  const rotaryDim = invFreq.size * 2;
  if (!Number.isInteger(rows) || rotaryDim > headDim || x.shape.length < 2) {
    throw new ShapeError(`rope: ${x.describe()} is not [batch, seq, ${heads} heads x ${headDim}] with rotary dim ${rotaryDim}`);
  }
  const apply = (input: Tensor, sign: number) => {
    const y = empty(input.shape);
    run(
      ROPE,
      [rows, heads, headDim, rotaryDim, seq, start, layout === 'pairs' ? 1 : 0],
      [sign],
      [input, invFreq, y],
      grid(input.size, 64),
    );
    return y;
  };
  const y = apply(x, 1);
  recordOp('rope', y, [x], [], (g) => [apply(g, -1)]);
  return y;
}

/**
 * Inverse frequencies theta^(-2i / dim) for i < dim / 2, with the optional Llama 3 scaling of
 * transformers' `_compute_llama3_parameters` (low frequencies divided by `factor`, a smooth
 * blend between the two wavelength bounds).
 */
export function ropeInverseFrequencies(
  dim: number,
  theta: number,
  scaling?: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number } | null,
): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    // Rounded through float32 as transformers computes it: 1 / theta ** (arange(0, dim, 2).float() / dim).
    const exponent = Math.fround((2 * i) / dim);
    let f = 1 / theta ** exponent;
    if (scaling) {
      const lowWavelen = scaling.originalMaxPositionEmbeddings / scaling.lowFreqFactor;
      const highWavelen = scaling.originalMaxPositionEmbeddings / scaling.highFreqFactor;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) f = f / scaling.factor;
      else if (wavelen >= highWavelen) {
        const smooth =
          (scaling.originalMaxPositionEmbeddings / wavelen - scaling.lowFreqFactor) /
          (scaling.highFreqFactor - scaling.lowFreqFactor);
        f = (1 - smooth) * (f / scaling.factor) + smooth * f;
      }
    }
    out[i] = f;
  }
  return out;
}

export function ropeTable(dim: number, theta: number, scaling?: Parameters<typeof ropeInverseFrequencies>[2]): Tensor {
  return fromData(ropeInverseFrequencies(dim, theta, scaling), [dim / 2]);
}

/** Plain reference for tests, over rows of [rows, heads, headDim] with position start + row % seq. */
export function ropeReference(
  x: ArrayLike<number>,
  heads: number,
  headDim: number,
  seq: number,
  invFreq: ArrayLike<number>,
  layout: RopeLayout,
  start = 0,
): Float64Array {
  const out = Float64Array.from(x);
  const rows = x.length / (heads * headDim);
  const half = invFreq.length;
  for (let r = 0; r < rows; r++) {
    const pos = start + (r % seq);
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const [p, q] = layout === 'pairs' ? [2 * i, 2 * i + 1] : [i, i + half];
        const angle = Math.fround(pos * invFreq[i]);
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        out[base + p] = x[base + p] * c - x[base + q] * s;
        out[base + q] = x[base + q] * c + x[base + p] * s;
      }
    }
  }
  return out;
}
