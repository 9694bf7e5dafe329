import { ShapeError } from '../errors.js';
import { empty, formatShape, recordOp, type Tensor } from '../tensor.js';
import { copyBlock, zeros } from './fill.js';
import { expectF32, grid, kernel, run } from './util.js';

export interface AttentionLayout {
  /** Element offset of the first row. */
  offset: number;
  /** Elements between two sequences of the batch. */
  batchStride: number;
  /** Elements between two positions of a sequence. */
  rowStride: number;
}

export interface AttentionOptions {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Softmax scale; 1 / sqrt(headDim) by default. */
  scale?: number;
  /** Absolute position of query row 0; keys 0 .. qStart + i are visible to query i. */
  qStart?: number;
  /** Number of valid key rows (the KV-cache length); the query length plus qStart by default. */
  keyLength?: number;
  /** Layouts of q, k and v inside their buffers; contiguous [batch, seq, heads * headDim] by default. */
  qLayout?: AttentionLayout;
  kLayout?: AttentionLayout;
  vLayout?: AttentionLayout;
}

function contiguousLayout(seq: number, width: number): AttentionLayout {
  return { offset: 0, batchStride: seq * width, rowStride: width };
}

/**
 * Causal softmax attention with grouped-query heads, fused: q [batch, seqQ, heads * headDim],
 * k and v [batch, seqK, kvHeads * headDim] -> [batch, seqQ, heads * headDim]. Right padding
 * needs no mask: a padded position comes after every real one, so causality hides it.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
  expectF32('attention', q, k, v);
  const { heads, kvHeads, headDim, qStart = 0 } = options;
  const scale = options.scale ?? 1 / Math.sqrt(headDim);
  if (heads % kvHeads !== 0) {
    throw new ShapeError(
      `attention: ${heads} heads are not a multiple of ${kvHeads} KV heads (q ${formatShape(q.shape)}, k ${formatShape(k.shape)})`,
    );
  }
  const [batch, seqQ] = q.shape;
  const qWidth = heads * headDim;
  const kvWidth = kvHeads * headDim;
  if (q.shape.length !== 3 || (!options.qLayout && q.shape[2] !== qWidth)) {
    throw new ShapeError(`attention: q ${formatShape(q.shape)} is not [batch, seq, ${heads} x ${headDim}]`);
  }
  const keyLength = options.keyLength ?? qStart + seqQ;
  const qL = options.qLayout ?? contiguousLayout(seqQ, qWidth);
  const kL = options.kLayout ?? contiguousLayout(k.shape[1], kvWidth);
  const vL = options.vLayout ?? contiguousLayout(v.shape[1], kvWidth);
  if (!options.kLayout && (k.shape.length !== 3 || k.shape[2] !== kvWidth || k.shape[0] !== batch || k.shape[1] < keyLength)) {
    throw new ShapeError(`attention: k ${formatShape(k.shape)} is not [${batch}, >= ${keyLength}, ${kvHeads} x ${headDim}]`);
  }
  if (!options.vLayout && (v.shape.length !== 3 || v.shape[2] !== kvWidth || v.shape[0] !== batch)) {
    throw new ShapeError(`attention: v ${formatShape(v.shape)} does not match k ${formatShape(k.shape)}`);
  }
  const spec = (entry: string, bindings: string) => kernel('attention', entry, bindings, { D: headDim });
  const params = [
    batch, heads, kvHeads, seqQ,
    keyLength, qStart, qL.offset, qL.batchStride,
    qL.rowStride, kL.offset, kL.batchStride, kL.rowStride,
    vL.offset, vL.batchStride, vL.rowStride,
  ];
  const out = empty([batch, seqQ, qWidth]);
  const lse = empty([batch, heads, seqQ]);
  run(spec('forward', 'rrrww'), params, [scale], [q, k, v, out, lse], grid(batch * heads * seqQ, 64));

  recordOp('attention', out, [q, k, v], [q, k, v, out, lse], (g, [q, k, v, out, lse]) => {
    const dq = empty([batch, seqQ, qWidth]);
    const dsum = empty([batch, heads, seqQ]);
    run(spec('backward_query', 'rrrrrrww'), params, [scale], [q, k, v, out, g, lse, dq, dsum], grid(batch * heads * seqQ, 64));
    const dk = empty([batch, keyLength, kvWidth]);
    const dv = empty([batch, keyLength, kvWidth]);
    run(
      spec('backward_key_value', 'rrrrrrww'),
      params,
      [scale],
      [q, k, v, g, lse, dsum, dk, dv],
      grid(batch * kvHeads * keyLength, 64),
    );
    dsum.dispose();
    return [
      scatterGradient(dq, q, qL, batch, seqQ, qWidth),
      scatterGradient(dk, k, kL, batch, keyLength, kvWidth),
      scatterGradient(dv, v, vL, batch, keyLength, kvWidth),
    ];
  });
  lse.dispose();
  return out;
}

/**
 * The gradient of an attention input from the kernels' contiguous [batch, seq, width] gradient.
 * An input read through a layout (a fused QKV projection, a KV cache longer than `seq`) gets
 * zeros except at the positions attention read, so its gradient has the input's own shape.
 */
function scatterGradient(grad: Tensor, input: Tensor, layout: AttentionLayout, batch: number, seq: number, width: number): Tensor {
  const contiguous = layout.offset === 0 && layout.rowStride === width && layout.batchStride === seq * width;
  if (contiguous && input.shape.length === 3 && input.shape[1] === seq && input.size === grad.size) return grad;
  const out = zeros(input.shape);
  for (let b = 0; b < batch; b++) {
    copyBlock(grad, out, {
      rows: seq,
      cols: width,
      srcOffset: b * seq * width,
      srcStride: width,
      dstOffset: layout.offset + b * layout.batchStride,
      dstStride: layout.rowStride,
    });
  }
  grad.dispose();
  return out;
}

/** Plain reference for tests: contiguous q, k, v as above, with qStart = 0. */
export function attentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  batch: number,
  seq: number,
  heads: number,
  kvHeads: number,
  headDim: number,
): Float64Array {
  const out = new Float64Array(batch * seq * heads * headDim);
  const scale = 1 / Math.sqrt(headDim);
  const group = heads / kvHeads;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < seq; i++) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let d = 0; d < headDim; d++) {
            s += q[((b * seq + i) * heads + h) * headDim + d] * k[((b * seq + j) * kvHeads + hk) * headDim + d];
          }
          scores.push(s * scale);
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((x, y) => x + y, 0);
        for (let d = 0; d < headDim; d++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += (e[j] / z) * v[((b * seq + j) * kvHeads + hk) * headDim + d];
          out[((b * seq + i) * heads + h) * headDim + d] = acc;
        }
      }
    }
  }
  return out;
}
