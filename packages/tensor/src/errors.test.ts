import { beforeAll, describe, expect, it } from 'vitest';
import { init } from './engine.js';
import { ShapeError, TemaError } from './errors.js';
import { add, attention, crossEntropy, linear, matmul, rmsNorm, silu, sum, swiglu } from './ops/index.js';
import { backward, fromData, tidy, type Tensor } from './tensor.js';

beforeAll(async () => {
  await init();
});

const f32 = (shape: number[]) => fromData(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
const i32 = (shape: number[]) => fromData(new Int32Array(shape.reduce((a, b) => a * b, 1)), shape, 'i32');

/** Run `fn` in a scope and return what it threw, failing when it throws nothing. */
function thrown(fn: () => unknown): Error {
  try {
    tidy(fn);
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, none was thrown');
}

function expectShapeError(fn: () => unknown, message: RegExp): void {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(ShapeError);
  expect(e).toBeInstanceOf(TemaError);
  expect(e.message).toMatch(message);
}

describe('shape mismatches', () => {
  it('matmul with unequal inner dimensions', () => {
    expectShapeError(() => matmul(f32([2, 3]), f32([4, 5])), /^matmul: cannot multiply \[2, 3\] by \[4, 5\]$/);
    expectShapeError(
      () => matmul(f32([2, 3]), f32([5, 3]), { transA: true }),
      /^matmul: cannot multiply \[2, 3\]ᵀ by \[5, 3\]$/,
    );
    expectShapeError(() => matmul(f32([2, 2, 3]), f32([3, 3, 4])), /matmul: cannot multiply \[2, 2, 3\] by \[3, 3, 4\]/);
    expectShapeError(() => matmul(f32([3]), f32([3, 4])), /matmul: needs at least 2-D tensors, got \[3\] and \[3, 4\]/);
  });

  it('linear with a weight of the wrong width', () => {
    expectShapeError(() => linear(f32([2, 6]), f32([4, 5])), /linear: input \[2, 6\] does not fit weight \[4, 5\]/);
  });

  it('add whose smaller shape is not a suffix', () => {
    expectShapeError(() => add(f32([2, 3]), f32([2])), /^add: cannot broadcast \[2, 3\] with \[2\]/);
    expectShapeError(() => add(f32([4]), f32([2, 3])), /^add: cannot broadcast \[4\] with \[2, 3\]/);
  });

  it('swiglu with gate and up of different sizes', () => {
    expectShapeError(() => swiglu(f32([2, 4]), f32([2, 3])), /swiglu: gate \[2, 4\] and up \[2, 3\] differ/);
  });

  it('rmsNorm weight of the wrong size', () => {
    expectShapeError(() => rmsNorm(f32([2, 4]), f32([5]), 1e-5), /rmsNorm: weight f32\[5\] does not match input f32\[2, 4\]/);
  });

  it('attention with mismatched head counts', () => {
    expectShapeError(
      () => attention(f32([1, 2, 12]), f32([1, 2, 8]), f32([1, 2, 8]), { heads: 3, kvHeads: 2, headDim: 4 }),
      /attention: 3 heads are not a multiple of 2 KV heads \(q \[1, 2, 12\], k \[1, 2, 8\]\)/,
    );
    expectShapeError(
      () => attention(f32([1, 2, 12]), f32([1, 2, 4]), f32([1, 2, 4]), { heads: 4, kvHeads: 1, headDim: 4 }),
      /attention: q \[1, 2, 12\] is not \[batch, seq, 4 x 4\]/,
    );
    expectShapeError(
      () => attention(f32([1, 2, 8]), f32([1, 2, 8]), f32([1, 2, 8]), { heads: 2, kvHeads: 1, headDim: 4 }),
      /attention: k \[1, 2, 8\] is not \[1, >= 2, 1 x 4\]/,
    );
  });

  it('crossEntropy with an extra target', () => {
    expectShapeError(
      () => crossEntropy(f32([3, 5]), i32([4]), 3),
      /crossEntropy: targets i32\[4\] must be i32 with one entry per row of f32\[3, 5\]/,
    );
  });

  it('reshape to a different element count', () => {
    expectShapeError(() => f32([2, 3]).reshape([4, 2]), /reshape: cannot view f32\[2, 3\] as \[4, 2\]/);
  });
});

describe('dtype mismatches', () => {
  it('f32 ops reject i32 tensors', () => {
    expectShapeError(() => silu(i32([3])), /^silu: expected an f32 tensor, got i32\[3\]$/);
    expectShapeError(() => matmul(i32([2, 2]), f32([2, 2])), /^matmul: expected an f32 tensor, got i32\[2, 2\]$/);
    expectShapeError(() => add(f32([3]), i32([3])), /^add: expected an f32 tensor, got i32\[3\]$/);
    expectShapeError(() => rmsNorm(i32([2, 4]), f32([4]), 1e-5), /^rmsNorm: expected an f32 tensor, got i32\[2, 4\]$/);
    expectShapeError(() => crossEntropy(f32([3, 5]), f32([3]), 3), /crossEntropy: targets f32\[3\] must be i32/);
  });
});

describe('lifetime errors', () => {
  it('use after dispose names the tensor', () => {
    const x = f32([2, 3]);
    x.name = 'layers.0.w';
    x.dispose();
    const e = thrown(() => silu(x));
    expect(e).toBeInstanceOf(TemaError);
    expect(e.message).toMatch(/tensor "layers.0.w" f32\[2, 3\] is used after dispose\(\)/);
    expect(() => x.reshape([6])).toThrow(/f32\[2, 3\] is used after dispose/);
    expect(() => x.write([1, 2, 3, 4, 5, 6])).toThrow(/is used after dispose/);
  });

  it('backward twice through a freed graph', () => {
    const w = fromData([1, 2, 3], [3]);
    w.requiresGrad = true;
    tidy(() => {
      const loss = sum(silu(w));
      backward(loss);
      const e = thrown(() => backward(loss));
      expect(e).toBeInstanceOf(TemaError);
      expect(e.message).toMatch(/backward: the graph through op "sum" \(output f32\[\]\) was already freed/);
    });
    w.grad?.dispose();
    w.dispose();
  });

  it('backward after the scope that recorded the graph closed', () => {
    const w = fromData([1, 2, 3], [3]);
    w.requiresGrad = true;
    const loss = tidy(() => sum(silu(w)));
    const e = thrown(() => backward(loss));
    expect(e).toBeInstanceOf(TemaError);
    expect(e.message).toMatch(/backward: the graph through op "sum" \(output f32\[\]\) was already freed/);
    loss.dispose();
    w.dispose();
  });

  it('backward of a non-scalar without a gradient', () => {
    const w = fromData([1, 2, 3, 4, 5, 6], [2, 3]);
    w.requiresGrad = true;
    expectShapeError(() => backward(silu(w)), /^backward: f32\[2, 3\] is not a scalar; pass the gradient of the output$/);
    w.dispose();
  });

  it('backward of a tensor outside any graph', () => {
    const e = thrown(() => backward(f32([1])));
    expect(e).toBeInstanceOf(TemaError);
    expect(e.message).toMatch(/backward: f32\[1\] does not depend on any tensor with requiresGrad/);
  });

  it('item of a tensor with several elements', async () => {
    const x: Tensor = f32([2]);
    await expect(x.item()).rejects.toThrow(/item\(\) needs one element, f32\[2\] has 2/);
    x.dispose();
  });
});
