// Element-wise maps over f32 tensors: Out[i] = {{EXPR}}, an expression of a = A[i % aLen],
// b = B[i % bLen], c = C[i % cLen] and the scalars alpha, beta. A length that divides n broadcasts
// that input along the leading dimensions. Unused inputs are bound to A.
// Reference: the `reference` field of each op in packages/tensor/src/ops/elementwise.ts.

struct Params {
  n: u32,
  aLen: u32,
  bLen: u32,
  cLen: u32,
  alpha: f32,
  beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> C: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;

fn sigmoid(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

fn gelu_inner(x: f32) -> f32 {
  // tanh approximation used by GPT-2 ("gelu_new"); clamped because tanh of a large argument
  // may be computed through exp and overflow.
  return clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
}

fn op(a: f32, b: f32, c: f32) -> f32 {
  let alpha = p.alpha;
  let beta = p.beta;
  return {{EXPR}};
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) {
    return;
  }
  // Integer division has no vector form on CPU adapters, so the index is divided only when
  // an input really broadcasts.
  var ia = i;
  var ib = i;
  var ic = i;
  if (p.aLen != p.n) {
    ia = i % p.aLen;
  }
  if (p.bLen != p.n) {
    ib = i % p.bLen;
  }
  if (p.cLen != p.n) {
    ic = i % p.cLen;
  }
  Out[i] = op(A[ia], B[ib], C[ic]);
}
