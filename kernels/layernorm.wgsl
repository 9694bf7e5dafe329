// LayerNorm over the last dimension, as torch.nn.LayerNorm with elementwise affine:
// y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(mean((x - mean)^2) + eps).
// Two variants of each row kernel, as in rmsnorm.wgsl: one workgroup per row with a tree
// reduction (GPUs), and one invocation per row with plain loops (CPU adapters).
// Reference: layerNormReference in packages/tensor/src/ops/layernorm.ts.

struct Params {
  rows: u32,
  cols: u32,
  eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;

fn reduce64(li: u32, v: f32) -> f32 {
  partial[li] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (li < s) {
      partial[li] = partial[li] + partial[li + s];
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

// Bindings: X, W, B -> Y, Mean, Rstd.
@group(0) @binding(1) var<storage, read> fX: array<f32>;
@group(0) @binding(2) var<storage, read> fW: array<f32>;
@group(0) @binding(3) var<storage, read> fB: array<f32>;
@group(0) @binding(4) var<storage, read_write> fY: array<f32>;
@group(0) @binding(5) var<storage, read_write> fMean: array<f32>;
@group(0) @binding(6) var<storage, read_write> fRstd: array<f32>;

// The variance is the mean of squared deviations (two passes), not E[x^2] - E[x]^2, which
// loses digits when the mean is large against the spread.
@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  var s = 0.0;
  for (var j = li; j < p.cols; j = j + 64u) {
    s = s + fX[base + j];
  }
  let mean = reduce64(li, s) / f32(p.cols);
  var v = 0.0;
  for (var j = li; j < p.cols; j = j + 64u) {
    let d = fX[base + j] - mean;
    v = v + d * d;
  }
  let rstd = 1.0 / sqrt(reduce64(li, v) / f32(p.cols) + p.eps);
  for (var j = li; j < p.cols; j = j + 64u) {
    fY[base + j] = (fX[base + j] - mean) * rstd * fW[j] + fB[j];
  }
  if (li == 0u) {
    fMean[row] = mean;
    fRstd[row] = rstd;
  }
}

// With xhat = (x - mean) * rstd and gh = g * w:
// dx_j = rstd * (gh_j - mean_i(gh_i) - xhat_j * mean_i(gh_i * xhat_i)).
// Bindings: X, W, G, Mean, Rstd -> DX.
@group(0) @binding(1) var<storage, read> bX: array<f32>;
@group(0) @binding(2) var<storage, read> bW: array<f32>;
@group(0) @binding(3) var<storage, read> bG: array<f32>;
@group(0) @binding(4) var<storage, read> bMean: array<f32>;
@group(0) @binding(5) var<storage, read> bRstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> bDX: array<f32>;

@compute @workgroup_size(64)
fn backward_input(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  let mean = bMean[row];
  let rstd = bRstd[row];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var j = li; j < p.cols; j = j + 64u) {
    let gh = bG[base + j] * bW[j];
    s1 = s1 + gh;
    s2 = s2 + gh * (bX[base + j] - mean) * rstd;
  }
  let m1 = reduce64(li, s1) / f32(p.cols);
  let m2 = reduce64(li, s2) / f32(p.cols);
  for (var j = li; j < p.cols; j = j + 64u) {
    let xhat = (bX[base + j] - mean) * rstd;
    bDX[base + j] = rstd * (bG[base + j] * bW[j] - m1 - xhat * m2);
  }
}

// dw_j = sum over rows of g_j * xhat_j and db_j = sum over rows of g_j, one invocation per
// column in a fixed row order, so the sums are deterministic.
// Bindings: X, G, Mean, Rstd -> DW, DB.
@group(0) @binding(1) var<storage, read> pX: array<f32>;
@group(0) @binding(2) var<storage, read> pG: array<f32>;
@group(0) @binding(3) var<storage, read> pMean: array<f32>;
@group(0) @binding(4) var<storage, read> pRstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> pDW: array<f32>;
@group(0) @binding(6) var<storage, read_write> pDB: array<f32>;

@compute @workgroup_size(64)
fn backward_params(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= p.cols) {
    return;
  }
  var sw = 0.0;
  var sb = 0.0;
  for (var r = 0u; r < p.rows; r = r + 1u) {
    let g = pG[r * p.cols + j];
    sw = sw + g * (pX[r * p.cols + j] - pMean[r]) * pRstd[r];
    sb = sb + g;
  }
  pDW[j] = sw;
  pDB[j] = sb;
}

// ---- One invocation per row, no barriers: the variant for CPU adapters.

// Bindings as forward.
@compute @workgroup_size(64)
fn forward_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  var s = 0.0;
  for (var j = 0u; j < p.cols; j = j + 1u) {
    s = s + fX[base + j];
  }
  let mean = s / f32(p.cols);
  var v = 0.0;
  for (var j = 0u; j < p.cols; j = j + 1u) {
    let d = fX[base + j] - mean;
    v = v + d * d;
  }
  let rstd = 1.0 / sqrt(v / f32(p.cols) + p.eps);
  for (var j = 0u; j < p.cols; j = j + 1u) {
    fY[base + j] = (fX[base + j] - mean) * rstd * fW[j] + fB[j];
  }
  fMean[row] = mean;
  fRstd[row] = rstd;
}

// Bindings as backward_input.
@compute @workgroup_size(64)
fn backward_input_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  let mean = bMean[row];
  let rstd = bRstd[row];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var j = 0u; j < p.cols; j = j + 1u) {
    let gh = bG[base + j] * bW[j];
    s1 = s1 + gh;
    s2 = s2 + gh * (bX[base + j] - mean) * rstd;
  }
  let m1 = s1 / f32(p.cols);
  let m2 = s2 / f32(p.cols);
  for (var j = 0u; j < p.cols; j = j + 1u) {
    let xhat = (bX[base + j] - mean) * rstd;
    bDX[base + j] = rstd * (bG[base + j] * bW[j] - m1 - xhat * m2);
  }
}
