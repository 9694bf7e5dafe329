import { ShapeError } from '../errors.js';
import { empty, formatShape, numel, recordOp, type Tensor } from '../tensor.js';
import { expectF32, grid, kernel, run } from './util.js';

/**
 * The element-wise maps: one WGSL expression of a, b, c, alpha (see kernels/elementwise.wgsl)
 * and a plain TypeScript reference of the same formula, which the tests compare against.
 */
export const MAPS = {
  add: { expr: 'a + alpha * b', reference: (a: number, b: number, _c: number, alpha: number) => a + alpha * b },
  mul: { expr: 'a * b', reference: (a: number, b: number) => a * b },
  scale: { expr: 'alpha * a', reference: (a: number, _b: number, _c: number, alpha: number) => alpha * a },
  silu: { expr: 'a * sigmoid(a)', reference: (a: number) => a / (1 + Math.exp(-a)) },
  // a = x, b = dy
  silu_backward: {
    expr: 'b * sigmoid(a) * (1.0 + a * (1.0 - sigmoid(a)))',
    reference: (a: number, b: number) => {
      const s = 1 / (1 + Math.exp(-a));
      return b * s * (1 + a * (1 - s));
    },
  },
  gelu: {
    expr: '0.5 * a * (1.0 + tanh(gelu_inner(a)))',
    reference: (a: number) => 0.5 * a * (1 + Math.tanh(0.7978845608028654 * (a + 0.044715 * a ** 3))),
  },
  // a = x, b = dy
  gelu_backward: {
    expr:
      'b * (0.5 * (1.0 + tanh(gelu_inner(a))) + 0.5 * a * (1.0 - tanh(gelu_inner(a)) * tanh(gelu_inner(a))) * 0.7978845608028654 * (1.0 + 0.134145 * a * a))',
    reference: (a: number, b: number) => {
      const t = Math.tanh(0.7978845608028654 * (a + 0.044715 * a ** 3));
      return b * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * 0.7978845608028654 * (1 + 0.134145 * a * a));
    },
  },
  // a = gate, b = up
  swiglu: { expr: 'a * sigmoid(a) * b', reference: (a: number, b: number) => (a / (1 + Math.exp(-a))) * b },
  // a = gate, b = up, c = dy
  swiglu_backward_gate: {
    expr: 'c * b * sigmoid(a) * (1.0 + a * (1.0 - sigmoid(a)))',
    reference: (a: number, b: number, c: number) => {
      const s = 1 / (1 + Math.exp(-a));
      return c * b * s * (1 + a * (1 - s));
    },
  },
  swiglu_backward_up: { expr: 'c * a * sigmoid(a)', reference: (a: number, _b: number, c: number) => (c * a) / (1 + Math.exp(-a)) },
} as const;

export type MapName = keyof typeof MAPS;

const specs = new Map<MapName, ReturnType<typeof kernel>>();

/** Apply a map element-wise; inputs of smaller size broadcast along the leading dimensions. */
export function map(name: MapName, inputs: Tensor[], outShape: readonly number[], alpha = 1, beta = 0): Tensor {
  expectF32(name, ...inputs);
  let spec = specs.get(name);
  if (!spec) {
    spec = kernel('elementwise', 'main', 'rrrw', { EXPR: MAPS[name].expr });
    specs.set(name, spec);
  }
  const n = numel(outShape);
  const out = empty(outShape, 'f32');
  const [a, b = a, c = a] = inputs;
  run(spec, [n, a.size, b.size, c.size], [alpha, beta], [a, b, c, out], grid(n, 256));
  return out;
}

const SUM_LEADING = kernel('reduce', 'sum_leading', 'rw');

/** Sum `g` over leading dimensions down to `shape` (the gradient of a broadcast input). */
export function reduceTo(g: Tensor, shape: readonly number[]): Tensor {
  const size = numel(shape);
  if (size === g.size) return g.reshape(shape);
  const out = empty(shape, 'f32');
  run(SUM_LEADING, [g.size, g.size / size, size, 0], [1], [g, out], [Math.ceil(size / 256)]);
  return out;
}

/** Return the output shape of a binary op whose smaller input is a suffix of the larger one. */
function broadcastShape(op: string, a: Tensor, b: Tensor): readonly number[] {
  const [big, small] = a.size >= b.size ? [a, b] : [b, a];
  const k = small.shape.length;
  const suffix = big.shape.slice(big.shape.length - k);
  const ok =
    small.size === 1 || (k <= big.shape.length && suffix.every((d, i) => d === small.shape[i]));
  if (!ok) {
    throw new ShapeError(
      `${op}: cannot broadcast ${formatShape(a.shape)} with ${formatShape(b.shape)} (the smaller shape must match the trailing dimensions)`,
    );
  }
  return big.shape;
}

/** a + alpha * b, broadcasting the smaller input along leading dimensions. */
export function add(a: Tensor, b: Tensor, alpha = 1): Tensor {
  const shape = broadcastShape('add', a, b);
  const out = map('add', [a, b], shape, alpha);
  recordOp('add', out, [a, b], [], (g) => {
    const ga = a.requiresGrad ? reduceTo(g, a.shape) : null;
    let gb: Tensor | null = null;
    if (b.requiresGrad) gb = reduceTo(alpha === 1 ? g : map('scale', [g], g.shape, alpha), b.shape);
    return [ga, gb];
  });
  return out;
}

export function sub(a: Tensor, b: Tensor): Tensor {
  return add(a, b, -1);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShape('mul', a, b);
  const out = map('mul', [a, b], shape);
  recordOp('mul', out, [a, b], [a, b], (g, [as, bs]) => [
    a.requiresGrad ? reduceTo(map('mul', [g, bs], g.shape), a.shape) : null,
    b.requiresGrad ? reduceTo(map('mul', [g, as], g.shape), b.shape) : null,
  ]);
  return out;
}

export function scale(a: Tensor, s: number): Tensor {
  const out = map('scale', [a], a.shape, s);
  recordOp('scale', out, [a], [], (g) => [map('scale', [g], g.shape, s)]);
  return out;
}

export function silu(x: Tensor): Tensor {
  const out = map('silu', [x], x.shape);
  recordOp('silu', out, [x], [x], (g, [xs]) => [map('silu_backward', [xs, g], x.shape)]);
  return out;
}

/** GELU with the tanh approximation (GPT-2's "gelu_new"). */
export function gelu(x: Tensor): Tensor {
  const out = map('gelu', [x], x.shape);
  recordOp('gelu', out, [x], [x], (g, [xs]) => [map('gelu_backward', [xs, g], x.shape)]);
  return out;
}

/** silu(gate) * up, the gated activation of Llama's MLP, in one pass. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (gate.size !== up.size) {
    throw new ShapeError(`swiglu: gate ${formatShape(gate.shape)} and up ${formatShape(up.shape)} differ`);
  }
  const out = map('swiglu', [gate, up], gate.shape);
  recordOp('swiglu', out, [gate, up], [gate, up], (g, [gs, us]) => [
    gate.requiresGrad ? map('swiglu_backward_gate', [gs, us, g], gate.shape) : null,
    up.requiresGrad ? map('swiglu_backward_up', [gs, us, g], up.shape) : null,
  ]);
  return out;
}

/** target += delta in place, without autograd (gradient accumulation, residual updates). */
export function addInPlace(target: Tensor, delta: Tensor, alpha = 1): void {
  if (target.size !== delta.size) {
    throw new ShapeError(`addInPlace: ${target.describe()} and ${delta.describe()} differ in size`);
  }
  const spec = kernel('copy', 'main', 'rw');
  if (alpha !== 1) {
    const scaled = map('scale', [delta], delta.shape, alpha);
    run(spec, [1, target.size, 0, 0, 0, 0, 1], [], [scaled, target], grid(target.size, 256));
    scaled.dispose();
    return;
  }
  run(spec, [1, target.size, 0, 0, 0, 0, 1], [], [delta, target], grid(target.size, 256));
}
