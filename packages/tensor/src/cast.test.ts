import { beforeAll, describe, expect, it } from 'vitest';
import { f16BitsToF32, f32ToF16Bits } from './dtype.js';
import { engine, init } from './engine.js';
import { TemaError } from './errors.js';
import { cast, mul, sum } from './ops/index.js';
import { backward, fromData, tidy } from './tensor.js';

let hasF16 = false;

beforeAll(async () => {
  await init();
  hasF16 = engine().info.features.has('shader-f16');
});

const SKIP_REASON = 'the adapter has no shader-f16 feature, so f16 tensors are not available';

const min = 2 ** -24; // smallest f16 subnormal
const VALUES = [
  0,
  -0,
  1,
  -1,
  0.1,
  Math.PI,
  -123.456,
  65504, // largest finite f16
  65519, // rounds down to 65504
  2 ** -14, // smallest normal
  2 ** -14 - min, // largest subnormal
  min,
  -min,
  3 * min, // a subnormal with two bits set
  1.5 * min, // tie between 1 and 2 units: rounds to the even 2
  2.5 * min, // tie between 2 and 3 units: rounds to the even 2
  0.4 * min, // rounds to zero
  1 + 2 ** -11, // tie between 1 and 1 + 2^-10: rounds to the even 1
  1 + 3 * 2 ** -11, // tie between 1 + 2^-10 and 1 + 2^-9: rounds to the even 1 + 2^-9
  1 + 2 ** -11 + 2 ** -20, // just above the tie: rounds up
  -6.1e-5,
  Infinity,
  -Infinity,
  1e-30,
];

describe('f16 reference conversions', () => {
  it('give the known IEEE half-precision bits', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToF16Bits(min)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -14)).toBe(0x0400);
    expect(f32ToF16Bits(1.5 * min)).toBe(0x0002);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0001)).toBe(min);
    expect(f16BitsToF32(0x3555)).toBeCloseTo(0.333251953125, 12);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
  });
});

describe('cast', () => {
  it('round trip matches the reference bits', async (ctx) => {
    ctx.skip(!hasF16, SKIP_REASON);
    // An odd count also exercises the last, half-filled pair of the f16 side.
    const values = Float32Array.from(VALUES.length % 2 ? VALUES : [...VALUES, 7.25]);
    const { half, back } = tidy(() => {
      const x = fromData(values, [values.length]);
      const half = cast(x, 'f16');
      return { half, back: cast(half, 'f32') };
    });
    expect(half.dtype).toBe('f16');
    expect(back.dtype).toBe('f32');
    const bits = await half.data();
    const restored = await back.data();
    values.forEach((v, i) => {
      const expectedBits = f32ToF16Bits(v);
      expect(bits[i].toString(16), `bits of ${v}`).toBe(expectedBits.toString(16));
      // Every f16 value is exact in f32, so Object.is also tells -0 from 0.
      expect(Object.is(restored[i], f16BitsToF32(expectedBits)), `value of ${v}: got ${restored[i]}`).toBe(true);
    });
    half.dispose();
    back.dispose();
  });

  it('f16 bits cast to exact f32 values', async (ctx) => {
    ctx.skip(!hasF16, SKIP_REASON);
    const bits = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0x3c01, 0x7bff, 0xfbff, 0x7c00, 0xfc00];
    const out = tidy(() => cast(fromData(bits, [bits.length], 'f16'), 'f32'));
    const values = await out.data();
    bits.forEach((b, i) => expect(Object.is(values[i], f16BitsToF32(b)), `bits ${b.toString(16)}: ${values[i]}`).toBe(true));
    out.dispose();
  });

  it('round trip passes gradients back', async (ctx) => {
    ctx.skip(!hasF16, SKIP_REASON);
    const x = fromData([0.5, -2, 3.25], [3]);
    x.requiresGrad = true;
    tidy(() => backward(sum(mul(cast(cast(x, 'f16'), 'f32'), fromData([1.5, -0.25, 4], [3])))));
    // The weights are exact in f16, so the gradient is too.
    expect(Array.from(await x.grad!.data())).toEqual([1.5, -0.25, 4]);
    x.grad!.dispose();
    x.dispose();
  });

  it('same dtype returns input, i32 rejected', (ctx) => {
    ctx.skip(!hasF16, SKIP_REASON);
    const x = fromData([1], [1]);
    expect(cast(x, 'f32')).toBe(x);
    const ids = fromData([1, 2], [2], 'i32');
    expect(() => cast(ids, 'f16')).toThrow(TemaError);
    expect(() => cast(ids, 'f16')).toThrow(/cast: cannot cast i32\[2\] to f16/);
    x.dispose();
    ids.dispose();
  });
});
