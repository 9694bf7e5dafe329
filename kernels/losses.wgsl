// Per-position losses over rows of logits [rows, V]. Target rows equal to -100 count for nothing.
//   cross_entropy:  loss_r = logsumexp(z_r) - z_r[target_r]
//   divergence:     T^2 * D(p_teacher, p_student) with p = softmax(z / T), where D is
//                   forward KL(t || s), reverse KL(s || t), or the generalized Jensen-Shannon
//                   divergence beta * KL(t || m) + (1 - beta) * KL(s || m), m = beta t + (1 - beta) s.
// Row losses are summed by reduce.wgsl and divided by the count of target positions on the CPU side.
// Reference: crossEntropyReference and divergenceReference in packages/tensor/src/ops/losses.ts.

struct Params {
  rows: u32,
  V: u32,
  direction: u32,
  invT: f32,
  T2: f32,
  beta: f32,
  invNorm: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> red: array<f32, 256>;

fn reduce_max(li: u32, v: f32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (li < s) {
      red[li] = max(red[li], red[li + s]);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum(li: u32, v: f32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (li < s) {
      red[li] = red[li] + red[li + s];
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn row_of(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// Bindings: Logits, Targets -> RowLoss, LSE.
@group(0) @binding(1) var<storage, read> ceZ: array<f32>;
@group(0) @binding(2) var<storage, read> ceT: array<i32>;
@group(0) @binding(3) var<storage, read_write> ceLoss: array<f32>;
@group(0) @binding(4) var<storage, read_write> ceLSE: array<f32>;

@compute @workgroup_size(256)
fn cross_entropy(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.V;
  var m = -3.0e38;
  for (var j = li; j < p.V; j = j + 256u) {
    m = max(m, ceZ[base + j]);
  }
  m = reduce_max(li, m);
  var s = 0.0;
  for (var j = li; j < p.V; j = j + 256u) {
    s = s + exp(ceZ[base + j] - m);
  }
  let lse = m + log(reduce_sum(li, s));
  if (li == 0u) {
    let t = ceT[row];
    ceLSE[row] = lse;
    if (t < 0) {
      ceLoss[row] = 0.0;
    } else {
      ceLoss[row] = lse - ceZ[base + u32(t)];
    }
  }
}

// dz = (softmax(z) - onehot(target)) * g * invNorm on counted rows, 0 elsewhere; one invocation per element.
// Bindings: Logits, Targets, LSE, G (scalar) -> dLogits.
@group(0) @binding(1) var<storage, read> cbZ: array<f32>;
@group(0) @binding(2) var<storage, read> cbT: array<i32>;
@group(0) @binding(3) var<storage, read> cbLSE: array<f32>;
@group(0) @binding(4) var<storage, read> cbG: array<f32>;
@group(0) @binding(5) var<storage, read_write> cbDZ: array<f32>;

@compute @workgroup_size(256)
fn cross_entropy_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.rows * p.V) {
    return;
  }
  let row = i / p.V;
  let j = i % p.V;
  let t = cbT[row];
  if (t < 0) {
    cbDZ[i] = 0.0;
    return;
  }
  var grad = exp(cbZ[i] - cbLSE[row]);
  if (u32(t) == j) {
    grad = grad - 1.0;
  }
  cbDZ[i] = grad * cbG[0] * p.invNorm;
}

// log-softmax statistics of one row at temperature T: returns (max, log sum exp(z/T - max)).
fn row_stats(li: u32, base: u32, which: u32) -> vec2f {
  var m = -3.0e38;
  for (var j = li; j < p.V; j = j + 256u) {
    m = max(m, logit(which, base + j) * p.invT);
  }
  m = reduce_max(li, m);
  var s = 0.0;
  for (var j = li; j < p.V; j = j + 256u) {
    s = s + exp(logit(which, base + j) * p.invT - m);
  }
  return vec2f(m, log(reduce_sum(li, s)));
}

// Bindings: Student, Teacher, Targets -> RowLoss.
@group(0) @binding(1) var<storage, read> kS: array<f32>;
@group(0) @binding(2) var<storage, read> kT: array<f32>;
@group(0) @binding(3) var<storage, read> kTargets: array<i32>;
@group(0) @binding(4) var<storage, read_write> kOut: array<f32>;

fn logit(which: u32, i: u32) -> f32 {
  if (which == 0u) {
    return kS[i];
  }
  return kT[i];
}

// Per-element term g_j, whose sum over j is the divergence, and d(divergence)/d(log p_s,j)
// expressed through the student's probability: see divergence_backward.
fn divergence_term(ls: f32, lt: f32) -> f32 {
  let ps = exp(ls);
  let pt = exp(lt);
  if (p.direction == 0u) {
    return pt * (lt - ls);
  }
  if (p.direction == 1u) {
    return ps * (ls - lt);
  }
  let lm = log(p.beta * pt + (1.0 - p.beta) * ps);
  return p.beta * pt * (lt - lm) + (1.0 - p.beta) * ps * (ls - lm);
}

@compute @workgroup_size(256)
fn divergence(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) {
    return;
  }
  if (kTargets[row] < 0) {
    if (li == 0u) {
      kOut[row] = 0.0;
    }
    return;
  }
  let base = row * p.V;
  let ss = row_stats(li, base, 0u);
  let ts = row_stats(li, base, 1u);
  var acc = 0.0;
  for (var j = li; j < p.V; j = j + 256u) {
    let ls = kS[base + j] * p.invT - ss.x - ss.y;
    let lt = kT[base + j] * p.invT - ts.x - ts.y;
    acc = acc + divergence_term(ls, lt);
  }
  let total = reduce_sum(li, acc);
  if (li == 0u) {
    kOut[row] = p.T2 * total;
  }
}

// dL/dz_k = gscale * T * (p_s,k - p_t,k) for forward KL, and
//          gscale * T * p_s,k (a_k - sum_j p_s,j a_j) otherwise, with a = log p_s - log p_t
//          (reverse) or a = (1 - beta) log(p_s / m) (Jensen-Shannon); gscale = g * invNorm.
// Bindings: Student, Teacher, Targets, G (scalar) -> dStudent.
@group(0) @binding(1) var<storage, read> dS: array<f32>;
@group(0) @binding(2) var<storage, read> dT: array<f32>;
@group(0) @binding(3) var<storage, read> dTargets: array<i32>;
@group(0) @binding(4) var<storage, read> dG: array<f32>;
@group(0) @binding(5) var<storage, read_write> dOut: array<f32>;

fn blogit(which: u32, i: u32) -> f32 {
  if (which == 0u) {
    return dS[i];
  }
  return dT[i];
}

fn brow_stats(li: u32, base: u32, which: u32) -> vec2f {
  var m = -3.0e38;
  for (var j = li; j < p.V; j = j + 256u) {
    m = max(m, blogit(which, base + j) * p.invT);
  }
  m = reduce_max(li, m);
  var s = 0.0;
  for (var j = li; j < p.V; j = j + 256u) {
    s = s + exp(blogit(which, base + j) * p.invT - m);
  }
  return vec2f(m, log(reduce_sum(li, s)));
}

fn score(ls: f32, lt: f32) -> f32 {
  if (p.direction == 1u) {
    return ls - lt;
  }
  let lm = log(p.beta * exp(lt) + (1.0 - p.beta) * exp(ls));
  return (1.0 - p.beta) * (ls - lm);
}

@compute @workgroup_size(256)
fn divergence_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = row_of(wid, nwg);
  if (row >= p.rows) {
    return;
  }
  let base = row * p.V;
  if (dTargets[row] < 0) {
    for (var j = li; j < p.V; j = j + 256u) {
      dOut[base + j] = 0.0;
    }
    return;
  }
  let gscale = dG[0] * p.invNorm * p.T2 * p.invT;
  let ss = brow_stats(li, base, 0u);
  let ts = brow_stats(li, base, 1u);
  if (p.direction == 0u) {
    for (var j = li; j < p.V; j = j + 256u) {
      let ps = exp(dS[base + j] * p.invT - ss.x - ss.y);
      let pt = exp(dT[base + j] * p.invT - ts.x - ts.y);
      dOut[base + j] = gscale * (ps - pt);
    }
    return;
  }
  var acc = 0.0;
  for (var j = li; j < p.V; j = j + 256u) {
    let ls = dS[base + j] * p.invT - ss.x - ss.y;
    let lt = dT[base + j] * p.invT - ts.x - ts.y;
    acc = acc + exp(ls) * score(ls, lt);
  }
  let mean = reduce_sum(li, acc);
  for (var j = li; j < p.V; j = j + 256u) {
    let ls = dS[base + j] * p.invT - ss.x - ss.y;
    let lt = dT[base + j] * p.invT - ts.x - ts.y;
    dOut[base + j] = gscale * exp(ls) * (score(ls, lt) - mean);
  }
}

// ---- One invocation per row, with no workgroup memory or barriers. CPU adapters (lavapipe)
// run a whole workgroup as loops over its invocations and split it at every barrier, so the
// tree reductions above cost far more there than a plain loop over the row.

// Bindings as cross_entropy.
@compute @workgroup_size(64)
fn cross_entropy_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.V;
  var m = -3.0e38;
  for (var j = 0u; j < p.V; j = j + 1u) {
    m = max(m, ceZ[base + j]);
  }
  var s = 0.0;
  for (var j = 0u; j < p.V; j = j + 1u) {
    s = s + exp(ceZ[base + j] - m);
  }
  let lse = m + log(s);
  let t = ceT[row];
  ceLSE[row] = lse;
  if (t < 0) {
    ceLoss[row] = 0.0;
  } else {
    ceLoss[row] = lse - ceZ[base + u32(t)];
  }
}

fn single_stats(base: u32, which: u32) -> vec2f {
  var m = -3.0e38;
  for (var j = 0u; j < p.V; j = j + 1u) {
    m = max(m, logit(which, base + j) * p.invT);
  }
  var s = 0.0;
  for (var j = 0u; j < p.V; j = j + 1u) {
    s = s + exp(logit(which, base + j) * p.invT - m);
  }
  return vec2f(m, log(s));
}

// Bindings as divergence.
@compute @workgroup_size(64)
fn divergence_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) {
    return;
  }
  if (kTargets[row] < 0) {
    kOut[row] = 0.0;
    return;
  }
  let base = row * p.V;
  let ss = single_stats(base, 0u);
  let ts = single_stats(base, 1u);
  var acc = 0.0;
  for (var j = 0u; j < p.V; j = j + 1u) {
    let ls = kS[base + j] * p.invT - ss.x - ss.y;
    let lt = kT[base + j] * p.invT - ts.x - ts.y;
    acc = acc + divergence_term(ls, lt);
  }
  kOut[row] = p.T2 * acc;
}

fn bsingle_stats(base: u32, which: u32) -> vec2f {
  var m = -3.0e38;
  for (var j = 0u; j < p.V; j = j + 1u) {
    m = max(m, blogit(which, base + j) * p.invT);
  }
  var s = 0.0;
  for (var j = 0u; j < p.V; j = j + 1u) {
    s = s + exp(blogit(which, base + j) * p.invT - m);
  }
  return vec2f(m, log(s));
}

// Bindings as divergence_backward.
@compute @workgroup_size(64)
fn divergence_backward_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.V;
  if (dTargets[row] < 0) {
    for (var j = 0u; j < p.V; j = j + 1u) {
      dOut[base + j] = 0.0;
    }
    return;
  }
  let gscale = dG[0] * p.invNorm * p.T2 * p.invT;
  let ss = bsingle_stats(base, 0u);
  let ts = bsingle_stats(base, 1u);
  if (p.direction == 0u) {
    for (var j = 0u; j < p.V; j = j + 1u) {
      let ps = exp(dS[base + j] * p.invT - ss.x - ss.y);
      let pt = exp(dT[base + j] * p.invT - ts.x - ts.y);
      dOut[base + j] = gscale * (ps - pt);
    }
    return;
  }
  var mean = 0.0;
  for (var j = 0u; j < p.V; j = j + 1u) {
    let ls = dS[base + j] * p.invT - ss.x - ss.y;
    let lt = dT[base + j] * p.invT - ts.x - ts.y;
    mean = mean + exp(ls) * score(ls, lt);
  }
  for (var j = 0u; j < p.V; j = j + 1u) {
    let ls = dS[base + j] * p.invT - ss.x - ss.y;
    let lt = dT[base + j] * p.invT - ts.x - ts.y;
    dOut[base + j] = gscale * exp(ls) * (score(ls, lt) - mean);
  }
}
