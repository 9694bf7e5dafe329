import {
  add,
  empty,
  engine,
  formatShape,
  fromData,
  KERNELS,
  recordOp,
  ShapeError,
  untrack,
  type KernelSpec,
  type Tensor,
} from '@tematrainer/tensor';
import { doubleQuantize, DYNAMIC_MAP, type DoubleQuantized } from './double-quant.js';
import { checkBlockSize, NF4_DEFAULT_BLOCK_SIZE, quantizeNf4, type Nf4Quantized } from './nf4.js';

const WORKGROUP = 64;
/** Output columns per invocation of the word-wise forward kernel (OUTS in nf4.wgsl). */
const FORWARD_OUTPUTS = 4;

/** Rows sharing one dequantized weight per invocation: 8 for batches, 1 for single-token decoding. */
function rowsPerInvocation(rows: number): 1 | 8 {
  return rows >= 8 ? 8 : 1;
}

type Entry = 'forward' | 'backward' | 'forwardAny' | 'backwardAny';

function spec(entry: Entry, rows: number): KernelSpec {
  return { source: KERNELS.nf4, entry, bindings: 'rrrrrw', defines: { ROWS: rowsPerInvocation(rows) } };
}

let dynamicMap: Tensor | null = null;

/** Return the dynamic map on the GPU, shared by every layer of this process and never freed. */
function dynamicMapTensor(): Tensor {
  if (!dynamicMap || dynamicMap.isDisposed) dynamicMap = untrack(fromData(DYNAMIC_MAP, [DYNAMIC_MAP.length]));
  return dynamicMap;
}

/** Bytes as little-endian u32 words, zero-padded to a whole word. */
function toWords(bytes: Uint8Array): Uint32Array {
  const padded = new Uint8Array(Math.max(4, Math.ceil(bytes.length / 4) * 4));
  padded.set(bytes);
  return new Uint32Array(padded.buffer);
}

export interface Nf4LinearOptions {
  blocksize?: number;
  /** Store the absmax values double-quantized (8 bits each plus one f32 per 256 blocks). */
  doubleQuant?: boolean;
  /** Full-precision bias [out], kept as it is. */
  bias?: Tensor | null;
}

/**
 * A frozen linear layer whose weight [out, in] is stored in NF4, as bitsandbytes' Linear4bit
 * stores it. `forward` dequantizes inside the matmul kernel, so no full-precision copy of the
 * weight ever exists on the GPU. Gradients flow to the input only: the weight is frozen, as
 * QLoRA trains adapters on top of it.
 */
export class Nf4Linear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly blocksize: number;
  readonly doubleQuant: boolean;
  /** Packed codes as u32 words, ceil(out · in / 8) of them. */
  readonly codes: Tensor;
  /** absmax as f32 bits, or the 8-bit double-quantized indices packed four per word. */
  readonly scales: Tensor;
  /** Second-level absmax of each 256 blocks (double quantization only; else an empty stand-in). */
  readonly absmax2: Tensor | null;
  /** Mean of the absmax values, added back when dequantizing them (double quantization only). */
  readonly offset: number;
  bias: Tensor | null;

  constructor(
    readonly name: string,
    shape: readonly [number, number],
    quantized: Nf4Quantized | (Omit<Nf4Quantized, 'absmax'> & { absmax: DoubleQuantized }),
    options: Omit<Nf4LinearOptions, 'doubleQuant'> = {},
  ) {
    [this.outFeatures, this.inFeatures] = shape;
    this.blocksize = options.blocksize ?? NF4_DEFAULT_BLOCK_SIZE;
    checkBlockSize(this.blocksize, `${name}: blocksize`);
    const n = this.outFeatures * this.inFeatures;
    const blocks = Math.ceil(n / this.blocksize);
    if (quantized.codes.length !== Math.ceil(n / 2)) {
      throw new ShapeError(`${name}: ${quantized.codes.length} code bytes do not fit a weight [${shape.join(', ')}] (expected ${Math.ceil(n / 2)})`);
    }

    this.codes = untrack(fromData(toWords(quantized.codes), [Math.max(1, Math.ceil(quantized.codes.length / 4))], 'u32'));
    const absmax = quantized.absmax;
    if (absmax instanceof Float32Array) {
      if (absmax.length !== blocks) throw new ShapeError(`${name}: expected ${blocks} absmax values, found ${absmax.length}`);
      this.doubleQuant = false;
      this.scales = untrack(fromData(new Uint32Array(absmax.buffer, absmax.byteOffset, absmax.length), [absmax.length], 'u32'));
      this.absmax2 = null;
      this.offset = 0;
    } else {
      if (absmax.qabsmax.length !== blocks) throw new ShapeError(`${name}: expected ${blocks} quantized absmax values, found ${absmax.qabsmax.length}`);
      this.doubleQuant = true;
      const words = toWords(absmax.qabsmax);
      this.scales = untrack(fromData(words, [words.length], 'u32'));
      this.absmax2 = untrack(fromData(absmax.absmax2, [absmax.absmax2.length]));
      this.offset = absmax.offset;
    }
    this.bias = options.bias ?? null;
  }

  /** Quantize a full-precision weight [out, in] (row-major) on the CPU and upload the result. */
  static fromWeight(name: string, weight: Float32Array, shape: readonly [number, number], options: Nf4LinearOptions = {}): Nf4Linear {
    if (weight.length !== shape[0] * shape[1]) {
      throw new ShapeError(`${name}: ${weight.length} values do not fill a weight ${formatShape(shape)}`);
    }
    const blocksize = options.blocksize ?? NF4_DEFAULT_BLOCK_SIZE;
    const { codes, absmax } = quantizeNf4(weight, blocksize);
    const stored = options.doubleQuant ? { codes, absmax: doubleQuantize(absmax) } : { codes, absmax };
    return new Nf4Linear(name, shape, stored, { blocksize, bias: options.bias });
  }

  /** Bytes of the quantized weight on the GPU: codes, absmax (or its 8-bit form and absmax2), bias. */
  get byteLength(): number {
    const n = this.outFeatures * this.inFeatures;
    const blocks = Math.ceil(n / this.blocksize);
    let bytes = Math.ceil(n / 2);
    bytes += this.doubleQuant ? blocks + (this.absmax2?.size ?? 0) * 4 + 4 : blocks * 4;
    return bytes + (this.bias?.size ?? 0) * 4;
  }

  /** y = x · Wᵀ (+ bias) for x [..., in] -> [..., out]. */
  forward(x: Tensor): Tensor {
    const inF = x.shape[x.shape.length - 1];
    if (x.dtype !== 'f32' || inF !== this.inFeatures) {
      throw new ShapeError(`${this.name}: expected f32 input [..., ${this.inFeatures}], got ${x.describe()}`);
    }
    const rows = x.size / inF;
    const y = empty([...x.shape.slice(0, -1), this.outFeatures]);
    // The word-wise kernels read 8 values of a row of W at once, so rows must start on a word.
    const wordWise = this.inFeatures % 8 === 0;
    if (wordWise) this.dispatch('forward', x, y, rows, Math.ceil(this.outFeatures / FORWARD_OUTPUTS));
    else this.dispatch('forwardAny', x, y, rows, this.outFeatures);

    recordOp('nf4Linear', y, [x], [], (g) => {
      const dx = empty(x.shape);
      if (wordWise) this.dispatch('backward', g, dx, rows, this.inFeatures / 8);
      else this.dispatch('backwardAny', g, dx, rows, this.inFeatures);
      return [dx];
    });
    return this.bias ? add(y, this.bias) : y;
  }

  /** Record one kernel over `columns` invocations along x (outputs, inputs or words of a row). */
  private dispatch(entry: Entry, input: Tensor, output: Tensor, rows: number, columns: number): void {
    const map = dynamicMapTensor();
    const absmax2 = this.absmax2 ?? map;
    engine().dispatch(
      spec(entry, rows),
      [rows, this.inFeatures, this.outFeatures, this.blocksize, this.doubleQuant ? 1 : 0, Math.log2(this.blocksize)],
      [this.offset],
      [input.buffer, this.codes.buffer, this.scales.buffer, absmax2.buffer, map.buffer, output.buffer],
      [Math.ceil(columns / WORKGROUP), Math.ceil(rows / rowsPerInvocation(rows))],
    );
  }

  dispose(): void {
    this.codes.dispose();
    this.scales.dispose();
    this.absmax2?.dispose();
    this.bias?.dispose();
  }
}
