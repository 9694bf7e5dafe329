import { beforeAll, describe, expect, it } from 'vitest';
import { backward, fromData, init, matmulReference, seededRandom, type Tensor } from '@tematrainer/tensor';
import { parseBitsAndBytesConfig, resolveBitsAndBytesConfig } from './config.js';
import { createDynamicMap, doubleDequantize, doubleQuantize, DOUBLE_QUANT_BLOCK_SIZE, DYNAMIC_MAP } from './double-quant.js';
import { dequantizeNf4, NF4_THRESHOLDS, NF4_VALUES, quantizeNf4 } from './nf4.js';
import { Nf4Linear } from './nf4-linear.js';

// An independent reference: bitsandbytes' dQuantizeNF4 as a binary decision tree over the float32
// midpoints between code values, codes first collected unpacked, then packed high nibble first.
const EDGES = [
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
  -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
  0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
  0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
].map(Math.fround);

function referenceCode(x: number): number {
  let lo = 0; // the code lies in [lo, hi]
  let hi = 15;
  while (lo < hi) {
    const mid = (lo + hi) >> 1; // edge between codes mid and mid + 1
    if (x > EDGES[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function referenceQuantize(values: Float32Array, blocksize: number): { codes: Uint8Array; absmax: Float32Array } {
  const unpacked: number[] = [];
  const absmax: number[] = [];
  for (let start = 0; start < values.length; start += blocksize) {
    const block = Array.from(values.subarray(start, start + blocksize));
    const max = block.reduce((m, v) => (Math.abs(v) > m ? Math.abs(v) : m), 0);
    absmax.push(max);
    for (const v of block) unpacked.push(max === 0 ? 7 : referenceCode(Math.fround(v / max)));
  }
  const codes = new Uint8Array(Math.ceil(unpacked.length / 2));
  for (let j = 0; j < codes.length; j++) codes[j] = (unpacked[2 * j] << 4) | (unpacked[2 * j + 1] ?? 0);
  return { codes, absmax: Float32Array.from(absmax) };
}

function randomNormal(n: number, seed: number, scale = 0.02): Float32Array {
  const random = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(random(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  }
  return out;
}

function adversarialBlocks(): Float32Array {
  const blocks: number[][] = [];
  blocks.push(new Array(64).fill(0)); // all zeros
  const huge = new Array(64).fill(0).map((_, i) => (i % 7) * 1e-3);
  huge[13] = 3e38; // one huge value crushes the rest to code 7
  blocks.push(huge);
  // Values exactly on every edge and one float32 step above it, with 1.0 fixing absmax at 1.
  const onEdges = [1.0];
  for (const e of EDGES) onEdges.push(e, e + Math.abs(e) * 2 ** -23 + 1e-45);
  while (onEdges.length < 64) onEdges.push(-1.0);
  blocks.push(onEdges);
  // Subnormals, alone and next to a normal value.
  blocks.push(new Array(64).fill(0).map((_, i) => (i - 32) * 1e-45));
  blocks.push(new Array(64).fill(0).map((_, i) => (i === 0 ? 1e-38 : i * 3e-42)));
  blocks.push(new Array(64).fill(-5)); // constant negative block
  return Float32Array.from(blocks.flat());
}

describe('quantizeNf4', () => {
  it('matches the reference on random blocks', () => {
    for (const [n, blocksize, seed] of [[4096, 64, 1], [1000, 64, 2], [777, 32, 3], [5000, 256, 4], [9, 4096, 5]]) {
      const values = randomNormal(n, seed);
      const ours = quantizeNf4(values, blocksize);
      const ref = referenceQuantize(values, blocksize);
      expect(ours.absmax).toEqual(ref.absmax);
      expect(ours.codes).toEqual(ref.codes);
    }
  });

  it('matches the reference on adversarial blocks', () => {
    const values = adversarialBlocks();
    const ours = quantizeNf4(values, 64);
    const ref = referenceQuantize(values, 64);
    expect(ours.absmax).toEqual(ref.absmax);
    expect(ours.codes).toEqual(ref.codes);
  });

  it('puts a value on an edge into the lower code', () => {
    const { codes } = quantizeNf4(Float32Array.from([1.0, NF4_THRESHOLDS[7], Math.fround(NF4_THRESHOLDS[7] * (1 + 2 ** -22)), 0]), 32);
    expect(codes[0]).toBe((15 << 4) | 7);
    expect(codes[1]).toBe((8 << 4) | 7);
  });

  it('packs the first element in the high nibble', () => {
    const { codes, absmax } = quantizeNf4(Float32Array.from([-2, 2, 0]), 32);
    expect(Array.from(codes)).toEqual([0x0f, 0x70]);
    expect(Array.from(absmax)).toEqual([2]);
  });

  it('reconstructs within half the gap of the neighbouring codes', () => {
    const values = Float32Array.from([...randomNormal(3000, 7), ...adversarialBlocks()]);
    const q = quantizeNf4(values, 64);
    const restored = dequantizeNf4(q, values.length, 64);
    for (let i = 0; i < values.length; i++) {
      const absmax = q.absmax[Math.floor(i / 64)];
      const code = (i % 2 === 0 ? q.codes[i >> 1] >> 4 : q.codes[i >> 1] & 15);
      const below = code > 0 ? NF4_VALUES[code] - NF4_VALUES[code - 1] : 0;
      const above = code < 15 ? NF4_VALUES[code + 1] - NF4_VALUES[code] : 0;
      const bound = (Math.max(below, above) / 2) * absmax * (1 + 1e-6) + 1e-45;
      expect(Math.abs(restored[i] - values[i]), `value ${i} = ${values[i]}`).toBeLessThanOrEqual(bound);
    }
  });

  it('rejects an unsupported block size', () => {
    expect(() => quantizeNf4(new Float32Array(8), 48)).toThrow(/blocksize: expected one of 32, 64/);
  });
});

describe('double quantization', () => {
  it('builds the signed dynamic map', () => {
    const map = createDynamicMap();
    expect(map.length).toBe(256);
    expect(map[255]).toBe(1);
    expect(map[0]).toBe(Math.fround(-(1 - 0.9 / 128)));
    expect(map.filter((v) => v === 0).length).toBe(1);
    const positives = Array.from(map).filter((v) => v > 0);
    expect(positives.length).toBe(128);
    expect(positives[0]).toBe(Math.fround(1e-6 * 0.55));
    for (let i = 1; i < 256; i++) expect(map[i]).toBeGreaterThan(map[i - 1]);
  });

  it('restores absmax within the resolution of the 8-bit map', () => {
    const absmax = new Float32Array(1000);
    const random = seededRandom(11);
    for (let i = 0; i < absmax.length; i++) absmax[i] = 0.01 + 0.1 * random() ** 3;
    const q = doubleQuantize(absmax);
    expect(q.absmax2.length).toBe(Math.ceil(1000 / DOUBLE_QUANT_BLOCK_SIZE));
    expect(q.offset).toBeCloseTo(absmax.reduce((a, b) => a + b, 0) / absmax.length, 6);
    const restored = doubleDequantize(q);
    for (let i = 0; i < absmax.length; i++) {
      const code = q.qabsmax[i];
      const gap = Math.max(code > 0 ? DYNAMIC_MAP[code] - DYNAMIC_MAP[code - 1] : 0, code < 255 ? DYNAMIC_MAP[code + 1] - DYNAMIC_MAP[code] : 0);
      const bound = (gap / 2) * q.absmax2[Math.floor(i / DOUBLE_QUANT_BLOCK_SIZE)] + 1e-7;
      expect(Math.abs(restored[i] - absmax[i]), `absmax ${i}`).toBeLessThanOrEqual(bound);
    }
  });
});

describe('BitsAndBytesConfig', () => {
  it('parses the snake_case names of transformers', () => {
    const config = parseBitsAndBytesConfig({
      load_in_4bit: true,
      bnb_4bit_quant_type: 'nf4',
      bnb_4bit_use_double_quant: true,
      bnb_4bit_compute_dtype: 'torch.bfloat16',
      llm_int8_threshold: 6,
    });
    expect(config).toEqual({
      loadIn4bit: true,
      bnb4bitQuantType: 'nf4',
      bnb4bitUseDoubleQuant: true,
      bnb4bitComputeDtype: 'bfloat16',
      bnb4bitBlocksize: 64,
      llmInt8SkipModules: [],
    });
  });

  it('rejects fp4, unknown fields and bad values', () => {
    expect(() => resolveBitsAndBytesConfig({ loadIn4bit: true, bnb4bitQuantType: 'fp4' })).toThrow(/"fp4" is not implemented/);
    expect(() => parseBitsAndBytesConfig({ load_in_4bits: true })).toThrow(/unknown field "load_in_4bits"/);
    expect(() => parseBitsAndBytesConfig({ bnb_4bit_compute_dtype: 'int8' })).toThrow(/bnb_4bit_compute_dtype: expected float32/);
    expect(() => parseBitsAndBytesConfig({ bnb_4bit_blocksize: 100 })).toThrow(/bnb_4bit_blocksize: expected one of/);
  });
});

describe('Nf4Linear', () => {
  beforeAll(async () => {
    await init();
  });

  /** Per-element bound: 1e-5 relative to the sum of |products|, so cancellation does not inflate it. */
  function expectClose(actual: Float32Array, a: Float32Array, b: Float32Array, M: number, N: number, K: number, transB: boolean) {
    const expected = matmulReference(a, b, M, N, K, false, transB);
    const magnitude = matmulReference(a.map(Math.abs), b.map(Math.abs), M, N, K, false, transB);
    for (let i = 0; i < expected.length; i++) {
      expect(Math.abs(actual[i] - expected[i]), `element ${i}`).toBeLessThanOrEqual(1e-5 * magnitude[i] + 1e-30);
    }
  }

  const shapes: [rows: number, inF: number, outF: number, blocksize: number, doubleQuant: boolean][] = [
    [3, 100, 37, 64, false], // blocks span rows of W; 3700 values, a partial last block
    [9, 130, 17, 64, true], // nine rows: eight per invocation plus a tail
    [1, 33, 7, 32, false], // an odd number of weights: the last byte contains one code
    [20, 72, 300, 32, true], // more than 256 blocks, so two absmax2 groups
    [5, 64, 5, 4096, false], // one block for the whole weight
  ];
  for (const [rows, inF, outF, blocksize, doubleQuant] of shapes) {
    it(`equals dequantize-then-matmul at [${rows}, ${inF}] x [${outF}, ${inF}], blocksize ${blocksize}${doubleQuant ? ', double quant' : ''}`, async () => {
      const weight = randomNormal(outF * inF, rows * 7 + inF);
      const layer = Nf4Linear.fromWeight('test', weight, [outF, inF], { blocksize, doubleQuant });
      const q = quantizeNf4(weight, blocksize);
      if (doubleQuant) q.absmax = doubleDequantize(doubleQuantize(q.absmax));
      const w = dequantizeNf4(q, weight.length, blocksize);

      const xValues = randomNormal(rows * inF, 99, 1);
      const gValues = randomNormal(rows * outF, 98, 1);
      const x: Tensor = fromData(xValues, [rows, inF]);
      x.requiresGrad = true;
      const y = layer.forward(x);
      expect(y.shape).toEqual([rows, outF]);
      backward(y, fromData(gValues, [rows, outF]));

      expectClose((await y.data()) as Float32Array, xValues, w, rows, outF, inF, true);
      expectClose((await x.grad!.data()) as Float32Array, gValues, w, rows, inF, outF, false);
      layer.dispose();
    });
  }

  it('reports its bytes', () => {
    const layer = Nf4Linear.fromWeight('bytes', randomNormal(128 * 64, 3), [128, 64]);
    expect(layer.byteLength).toBe(128 * 32 + 128 * 4);
    const dq = Nf4Linear.fromWeight('bytes', randomNormal(128 * 64, 3), [128, 64], { doubleQuant: true });
    expect(dq.byteLength).toBe(128 * 32 + 128 + 4 + 4);
    layer.dispose();
    dq.dispose();
  });
});
