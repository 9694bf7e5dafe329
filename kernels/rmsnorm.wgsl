// RMSNorm over the last dimension, as in Llama: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
// One workgroup per row. Each entry point declares its own bindings (WGSL allows the same binding
// number in different entry points). Reference: rmsNormReference in packages/tensor/src/ops/norm.ts.

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

// Bindings: X, W -> Y, Rstd.
@group(0) @binding(1) var<storage, read> fX: array<f32>;
@group(0) @binding(2) var<storage, read> fW: array<f32>;
@group(0) @binding(3) var<storage, read_write> fY: array<f32>;
@group(0) @binding(4) var<storage, read_write> fRstd: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  var s = 0.0;
  for (var j = li; j < p.cols; j = j + 64u) {
    s = s + fX[base + j] * fX[base + j];
  }
  let rstd = 1.0 / sqrt(reduce64(li, s) / f32(p.cols) + p.eps);
  for (var j = li; j < p.cols; j = j + 64u) {
    fY[base + j] = fX[base + j] * rstd * fW[j];
  }
  if (li == 0u) {
    fRstd[row] = rstd;
  }
}

// dx_j = rstd * (w_j g_j - x_j * rstd^2 * mean_i(w_i g_i x_i)).
// Bindings: X, W, G, Rstd -> DX.
@group(0) @binding(1) var<storage, read> bX: array<f32>;
@group(0) @binding(2) var<storage, read> bW: array<f32>;
@group(0) @binding(3) var<storage, read> bG: array<f32>;
@group(0) @binding(4) var<storage, read> bRstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> bDX: array<f32>;

@compute @workgroup_size(64)
fn backward_input(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.cols;
  let rstd = bRstd[row];
  var s = 0.0;
  for (var j = li; j < p.cols; j = j + 64u) {
    s = s + bW[j] * bG[base + j] * bX[base + j];
  }
  let m = reduce64(li, s) / f32(p.cols);
  for (var j = li; j < p.cols; j = j + 64u) {
    bDX[base + j] = rstd * (bW[j] * bG[base + j] - bX[base + j] * rstd * rstd * m);
  }
}

// dw_j = sum over rows of g_j x_j rstd, one invocation per column (a fixed order, so deterministic).
// Bindings: X, G, Rstd -> DW.
@group(0) @binding(1) var<storage, read> wX: array<f32>;
@group(0) @binding(2) var<storage, read> wG: array<f32>;
@group(0) @binding(3) var<storage, read> wRstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> wDW: array<f32>;

@compute @workgroup_size(64)
fn backward_weight(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= p.cols) {
    return;
  }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r = r + 1u) {
    s = s + wG[r * p.cols + j] * wX[r * p.cols + j] * wRstd[r];
  }
  wDW[j] = s;
}

// ---- One invocation per row, no barriers: the variant for CPU adapters (see losses.wgsl).

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
    s = s + fX[base + j] * fX[base + j];
  }
  let rstd = 1.0 / sqrt(s / f32(p.cols) + p.eps);
  for (var j = 0u; j < p.cols; j = j + 1u) {
    fY[base + j] = fX[base + j] * rstd * fW[j];
  }
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
  let rstd = bRstd[row];
  var s = 0.0;
  for (var j = 0u; j < p.cols; j = j + 1u) {
    s = s + bW[j] * bG[base + j] * bX[base + j];
  }
  let m = s / f32(p.cols);
  for (var j = 0u; j < p.cols; j = j + 1u) {
    bDX[base + j] = rstd * (bW[j] * bG[base + j] - bX[base + j] * rstd * rstd * m);
  }
}
