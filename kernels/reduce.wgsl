// Deterministic reductions: a fixed assignment of elements to invocations and a fixed tree,
// so the same input gives the same bits on every run (no float atomics).

struct Params {
  n: u32,
  rows: u32,
  cols: u32,
  outIndex: u32,
  alpha: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;

var<workgroup> partial: array<f32, 256>;

fn tree(li: u32) {
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (li < s) {
      partial[li] = partial[li] + partial[li + s];
    }
    workgroupBarrier();
  }
}

// Out[outIndex] = alpha * sum(A[0..n]) in one workgroup.
@compute @workgroup_size(256)
fn sum_all(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = li; i < p.n; i = i + 256u) {
    s = s + A[i];
  }
  partial[li] = s;
  tree(li);
  if (li == 0u) {
    Out[p.outIndex] = p.alpha * partial[0];
  }
}

// Out[outIndex] = alpha * sum(A[0..n]^2), one slot of a global gradient norm.
@compute @workgroup_size(256)
fn sumsq_all(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = li; i < p.n; i = i + 256u) {
    s = s + A[i] * A[i];
  }
  partial[li] = s;
  tree(li);
  if (li == 0u) {
    Out[p.outIndex] = p.alpha * partial[0];
  }
}

// Out[j] = alpha * sum over r of A[r * cols + j]: the gradient of a broadcast along leading dims.
@compute @workgroup_size(256)
fn sum_leading(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= p.cols) {
    return;
  }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r = r + 1u) {
    s = s + A[r * p.cols + j];
  }
  Out[j] = p.alpha * s;
}
