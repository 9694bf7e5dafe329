import { beforeAll, describe, expect, it } from 'vitest';
import { init } from './engine.js';
import {
  add,
  attention,
  attentionReference,
  crossEntropy,
  crossEntropyReference,
  embedding,
  linear,
  MAPS,
  matmulReference,
  rmsNorm,
  rmsNormReference,
  rope,
  ropeInverseFrequencies,
  ropeReference,
  silu,
  swiglu,
} from './ops/index.js';
import { AdamW, clipGradNorm } from './optim.js';
import { backward, fromData, tidyAsync, type Tensor } from './tensor.js';
import { randomArray, seededRandom } from './testing.js';

beforeAll(async () => {
  await init();
});

function parameter(values: Float32Array, shape: number[], name: string): Tensor {
  const p = fromData(values, shape);
  p.requiresGrad = true;
  p.name = name;
  return p;
}

/** Run `steps` AdamW steps of `lossOf` and return the loss of each step. */
async function train(params: Tensor[], lossOf: () => Tensor, steps: number, lr: number): Promise<number[]> {
  const opt = new AdamW(params, { lr, weightDecay: 0.01 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    losses.push(
      await tidyAsync(async () => {
        const loss = lossOf();
        backward(loss);
        opt.update({ clip: clipGradNorm(params, 1) });
        opt.zeroGrad();
        return loss.item();
      }),
    );
  }
  opt.dispose();
  return losses;
}

// ---------------------------------------------------------------- the transformer block

interface BlockConfig {
  dim: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  hidden: number;
  vocab: number;
}

const EPS = 1e-5;

/** Parameter names and shapes of one block with its head, in the order of `blockLoss`. */
function blockShapes(c: BlockConfig): [string, number[]][] {
  return [
    ['attention_norm', [c.dim]],
    ['wq', [c.heads * c.headDim, c.dim]],
    ['wk', [c.kvHeads * c.headDim, c.dim]],
    ['wv', [c.kvHeads * c.headDim, c.dim]],
    ['wo', [c.dim, c.heads * c.headDim]],
    ['ffn_norm', [c.dim]],
    ['w_gate', [c.hidden, c.dim]],
    ['w_up', [c.hidden, c.dim]],
    ['w_down', [c.dim, c.hidden]],
    ['head', [c.vocab, c.dim]],
  ];
}

function blockParameters(c: BlockConfig, seed: number): Tensor[] {
  return blockShapes(c).map(([name, shape], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    // Norm weights near 1, projections scaled by 1 / sqrt(fan-in) as usual initialisations do.
    const values = shape.length === 1 ? randomArray(n, seed + i, 0.2).map((v) => 1 + v) : randomArray(n, seed + i, 1 / Math.sqrt(shape[1]));
    return parameter(values, shape, name);
  });
}

/** Mean cross-entropy of a pre-norm Llama block with a linear head, on the GPU. x: [batch, seq, dim]. */
function blockLoss(c: BlockConfig, params: Tensor[], x: Tensor, targets: Tensor, invFreq: Tensor, counted: number): Tensor {
  const [attnNorm, wq, wk, wv, wo, ffnNorm, wGate, wUp, wDown, head] = params;
  const h = rmsNorm(x, attnNorm, EPS);
  const q = rope(linear(h, wq), c.heads, c.headDim, { layout: 'halves', invFreq }); // [batch, seq, heads * headDim]
  const k = rope(linear(h, wk), c.kvHeads, c.headDim, { layout: 'halves', invFreq }); // [batch, seq, kvHeads * headDim]
  const v = linear(h, wv);
  const a = attention(q, k, v, { heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim });
  const x2 = add(x, linear(a, wo)); // [batch, seq, dim]
  const h2 = rmsNorm(x2, ffnNorm, EPS);
  const x3 = add(x2, linear(swiglu(linear(h2, wGate), linear(h2, wUp)), wDown));
  const logits = linear(x3, head); // [batch, seq, vocab]
  return crossEntropy(logits, targets, counted);
}

/** y = x · wᵀ in float64 for x [rows, in] and w [out, in]. */
function linearReference(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, outF: number, inF: number): Float64Array {
  return matmulReference(x, w, rows, outF, inF, false, true);
}

/** The float64 reference of `blockLoss`, built from the ops' references. */
function blockLossReference(
  c: BlockConfig,
  params: Float64Array[],
  x: Float64Array,
  targets: number[],
  invFreq: Float32Array,
  batch: number,
  seq: number,
  counted: number,
): number {
  const [attnNorm, wq, wk, wv, wo, ffnNorm, wGate, wUp, wDown, head] = params;
  const rows = batch * seq;
  const qWidth = c.heads * c.headDim;
  const kvWidth = c.kvHeads * c.headDim;
  const h = rmsNormReference(x, attnNorm, c.dim, EPS);
  const q = ropeReference(linearReference(h, wq, rows, qWidth, c.dim), c.heads, c.headDim, seq, invFreq, 'halves');
  const k = ropeReference(linearReference(h, wk, rows, kvWidth, c.dim), c.kvHeads, c.headDim, seq, invFreq, 'halves');
  const v = linearReference(h, wv, rows, kvWidth, c.dim);
  const a = attentionReference(q, k, v, batch, seq, c.heads, c.kvHeads, c.headDim);
  const o = linearReference(a, wo, rows, c.dim, qWidth);
  const x2 = x.map((xi, i) => xi + o[i]);
  const h2 = rmsNormReference(x2, ffnNorm, c.dim, EPS);
  const gate = linearReference(h2, wGate, rows, c.hidden, c.dim);
  const up = linearReference(h2, wUp, rows, c.hidden, c.dim);
  const act = gate.map((g, i) => MAPS.swiglu.reference(g, up[i]));
  const down = linearReference(act, wDown, rows, c.dim, c.hidden);
  const x3 = x2.map((xi, i) => xi + down[i]);
  const logits = linearReference(x3, head, rows, c.vocab, c.dim);
  return crossEntropyReference(logits, targets, c.vocab, counted);
}

// ---------------------------------------------------------------- tests

describe('training', () => {
  it('a 2-layer MLP learns a synthetic classification set', async () => {
    // 48 points in [-1, 1]^4, labelled by which of x0, x1 and x2 + x3 is largest.
    const n = 48;
    const points = randomArray(n * 4, 7);
    const labels = Array.from({ length: n }, (_, i) => {
      const scores = [points[i * 4], points[i * 4 + 1], points[i * 4 + 2] + points[i * 4 + 3]];
      return scores.indexOf(Math.max(...scores));
    });
    expect(new Set(labels).size).toBe(3);
    const x = fromData(points, [n, 4]);
    const targets = fromData(labels, [n], 'i32');
    const w1 = parameter(randomArray(16 * 4, 1, 0.5), [16, 4], 'w1');
    const b1 = parameter(new Float32Array(16), [16], 'b1');
    const w2 = parameter(randomArray(3 * 16, 2, 0.25), [3, 16], 'w2');

    const losses = await train([w1, b1, w2], () => crossEntropy(linear(silu(linear(x, w1, b1)), w2), targets, n), 120, 0.05);

    expect(losses[0]).toBeGreaterThan(0.9); // about ln 3 for small initial logits
    expect(losses.at(-1)!).toBeLessThan(0.5 * losses[0]);
    expect(losses.at(-1)!).toBeLessThan(0.35);
    for (const t of [x, targets, w1, b1, w2]) t.dispose();
  });

  it('a tiny transformer block learns a next-token rule', async () => {
    const c: BlockConfig = { dim: 16, heads: 2, kvHeads: 1, headDim: 8, hidden: 32, vocab: 8 };
    const batch = 4;
    const seq = 6;
    // Each sequence counts up modulo the vocabulary from a random start; the target is the next token.
    const rand = seededRandom(11);
    const tokens: number[] = [];
    const next: number[] = [];
    for (let b = 0; b < batch; b++) {
      const start = Math.floor(rand() * c.vocab);
      for (let t = 0; t < seq; t++) {
        tokens.push((start + t) % c.vocab);
        next.push((start + t + 1) % c.vocab);
      }
    }
    const ids = fromData(tokens, [batch, seq], 'i32');
    const targets = fromData(next, [batch * seq], 'i32');
    const invFreq = fromData(ropeInverseFrequencies(c.headDim, 10000), [c.headDim / 2]);
    const embed = parameter(randomArray(c.vocab * c.dim, 3, 1), [c.vocab, c.dim], 'embed');
    const params = blockParameters(c, 50);

    const losses = await train(
      [embed, ...params],
      () => blockLoss(c, params, embedding(embed, ids), targets, invFreq, batch * seq),
      60,
      0.02,
    );

    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(0.5 * losses[0]);
    for (const t of [ids, targets, invFreq, embed, ...params]) t.dispose();
  });

  it('block gradients match float64 finite differences', async () => {
    const c: BlockConfig = { dim: 8, heads: 2, kvHeads: 1, headDim: 4, hidden: 12, vocab: 7 };
    const batch = 2;
    const seq = 3;
    const targetValues = [3, 0, 6, 1, -100, 5];
    const counted = targetValues.filter((t) => t >= 0).length;
    const xValues = randomArray(batch * seq * c.dim, 9);
    const inv = ropeInverseFrequencies(c.headDim, 10000);

    const params = blockParameters(c, 70);
    const x = parameter(xValues, [batch, seq, c.dim], 'x');
    const targets = fromData(targetValues, [batch * seq], 'i32');
    const invFreq = fromData(inv, [inv.length]);
    const leaves = [...params, x];
    const gpuLoss = await tidyAsync(async () => {
      const loss = blockLoss(c, params, x, targets, invFreq, counted);
      backward(loss);
      return loss.item();
    });
    const gpuGrads = await Promise.all(leaves.map(async (p) => Float64Array.from(await p.grad!.data())));
    const values = await Promise.all(leaves.map(async (p) => Float64Array.from(await p.data())));

    const lossOf = (v: Float64Array[]) =>
      blockLossReference(c, v.slice(0, params.length), v[params.length], targetValues, inv, batch, seq, counted);
    expect(Math.abs(gpuLoss - lossOf(values))).toBeLessThan(1e-5);

    // Central differences of the float64 reference are exact to about h² ≈ 1e-12, so the
    // tolerance only has to cover the float32 rounding of the GPU's backward pass.
    const h = 1e-6;
    const names = [...blockShapes(c).map(([name]) => name), 'x'];
    values.forEach((v, k) => {
      const numeric = new Float64Array(v.length);
      for (let i = 0; i < v.length; i++) {
        const saved = v[i];
        v[i] = saved + h;
        const up = lossOf(values);
        v[i] = saved - h;
        const down = lossOf(values);
        v[i] = saved;
        numeric[i] = (up - down) / (2 * h);
      }
      const scale = Math.max(...Array.from(numeric, Math.abs));
      expect(scale, `${names[k]} has a gradient`).toBeGreaterThan(1e-4);
      let worst = 0;
      let worstIndex = 0;
      for (let i = 0; i < v.length; i++) {
        const d = Math.abs(gpuGrads[k][i] - numeric[i]);
        if (d > worst) [worst, worstIndex] = [d, i];
      }
      expect(
        worst / scale,
        `${names[k]}[${worstIndex}]: GPU ${gpuGrads[k][worstIndex]}, finite differences ${numeric[worstIndex]}`,
      ).toBeLessThan(1e-3);
    });

    for (const p of leaves) {
      p.grad?.dispose();
      p.dispose();
    }
    targets.dispose();
    invFreq.dispose();
  });
});
