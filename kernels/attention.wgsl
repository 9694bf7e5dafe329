// Fused causal softmax attention with grouped-query heads, one invocation per query row.
// Query i (absolute position qStart + i) attends to keys j <= qStart + i with j < Tk.
// Element (b, t, h, d) of Q lives at qOff + b * qBS + t * qRS + h * D + d (K and V alike with
// their KV head hk = h / (H / Hkv)), so a KV cache or a fused QKV projection needs no copy.
// Forward keeps the log-sum-exp of each row so the backward recomputes the probabilities
// instead of storing the [T, T] matrix. The head size D is filled in when the pipeline is built.
// Reference: attentionReference in packages/tensor/src/ops/attention.ts.

const D = {{D}}u;

struct Params {
  B: u32, H: u32, Hkv: u32, Tq: u32,
  Tk: u32, qStart: u32, qOff: u32, qBS: u32,
  qRS: u32, kOff: u32, kBS: u32, kRS: u32,
  vOff: u32, vBS: u32, vRS: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Forward bindings: Q, K, V -> O [B, Tq, H * D], LSE [B, H, Tq].
@group(0) @binding(1) var<storage, read> fQ: array<f32>;
@group(0) @binding(2) var<storage, read> fK: array<f32>;
@group(0) @binding(3) var<storage, read> fV: array<f32>;
@group(0) @binding(4) var<storage, read_write> fO: array<f32>;
@group(0) @binding(5) var<storage, read_write> fLSE: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.B * p.H * p.Tq) {
    return;
  }
  let i = idx % p.Tq;
  let h = (idx / p.Tq) % p.H;
  let b = idx / (p.Tq * p.H);
  let hk = h / (p.H / p.Hkv);
  let qBase = p.qOff + b * p.qBS + i * p.qRS + h * D;
  var q: array<f32, D>;
  var acc: array<f32, D>;
  for (var d = 0u; d < D; d = d + 1u) {
    q[d] = fQ[qBase + d] * p.scale;
    acc[d] = 0.0;
  }
  var m = -3.0e38;
  var l = 0.0;
  let last = min(p.Tk, p.qStart + i + 1u);
  for (var j = 0u; j < last; j = j + 1u) {
    let kBase = p.kOff + b * p.kBS + j * p.kRS + hk * D;
    var s = 0.0;
    for (var d = 0u; d < D; d = d + 1u) {
      s = s + q[d] * fK[kBase + d];
    }
    if (s > m) {
      let correction = exp(m - s);
      l = l * correction;
      for (var d = 0u; d < D; d = d + 1u) {
        acc[d] = acc[d] * correction;
      }
      m = s;
    }
    let w = exp(s - m);
    l = l + w;
    let vBase = p.vOff + b * p.vBS + j * p.vRS + hk * D;
    for (var d = 0u; d < D; d = d + 1u) {
      acc[d] = acc[d] + w * fV[vBase + d];
    }
  }
  let oBase = ((b * p.Tq + i) * p.H + h) * D;
  for (var d = 0u; d < D; d = d + 1u) {
    fO[oBase + d] = acc[d] / l;
  }
  fLSE[idx] = m + log(l);
}

// Backward, step 1, one invocation per query row:
//   Dsum_i = dO_i . O_i,  dQ_i = scale * sum_j P_ij (dO_i . V_j - Dsum_i) K_j.
// Bindings: Q, K, V, O, dO, LSE -> dQ [B, Tq, H * D], Dsum [B, H, Tq].
@group(0) @binding(1) var<storage, read> aQ: array<f32>;
@group(0) @binding(2) var<storage, read> aK: array<f32>;
@group(0) @binding(3) var<storage, read> aV: array<f32>;
@group(0) @binding(4) var<storage, read> aO: array<f32>;
@group(0) @binding(5) var<storage, read> adO: array<f32>;
@group(0) @binding(6) var<storage, read> aLSE: array<f32>;
@group(0) @binding(7) var<storage, read_write> adQ: array<f32>;
@group(0) @binding(8) var<storage, read_write> aDsum: array<f32>;

@compute @workgroup_size(64)
fn backward_query(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.B * p.H * p.Tq) {
    return;
  }
  let i = idx % p.Tq;
  let h = (idx / p.Tq) % p.H;
  let b = idx / (p.Tq * p.H);
  let hk = h / (p.H / p.Hkv);
  let qBase = p.qOff + b * p.qBS + i * p.qRS + h * D;
  let oBase = ((b * p.Tq + i) * p.H + h) * D;
  var q: array<f32, D>;
  var go: array<f32, D>;
  var dq: array<f32, D>;
  var dsum = 0.0;
  for (var d = 0u; d < D; d = d + 1u) {
    q[d] = aQ[qBase + d] * p.scale;
    go[d] = adO[oBase + d];
    dq[d] = 0.0;
    dsum = dsum + go[d] * aO[oBase + d];
  }
  let lse = aLSE[idx];
  let last = min(p.Tk, p.qStart + i + 1u);
  for (var j = 0u; j < last; j = j + 1u) {
    let kBase = p.kOff + b * p.kBS + j * p.kRS + hk * D;
    let vBase = p.vOff + b * p.vBS + j * p.vRS + hk * D;
    var s = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < D; d = d + 1u) {
      s = s + q[d] * aK[kBase + d];
      dp = dp + go[d] * aV[vBase + d];
    }
    let ds = exp(s - lse) * (dp - dsum);
    for (var d = 0u; d < D; d = d + 1u) {
      dq[d] = dq[d] + ds * aK[kBase + d];
    }
  }
  for (var d = 0u; d < D; d = d + 1u) {
    adQ[oBase + d] = dq[d] * p.scale;
  }
  aDsum[idx] = dsum;
}

// Backward, step 2, one invocation per key row j of KV head hk, summing over the query heads
// that share it and over the queries that see it:
//   dV_j = sum P_ij dO_i,  dK_j = scale * sum P_ij (dO_i . V_j - Dsum_i) Q_i.
// Bindings: Q, K, V, dO, LSE, Dsum -> dK [B, Tk, Hkv * D], dV [B, Tk, Hkv * D].
@group(0) @binding(1) var<storage, read> cQ: array<f32>;
@group(0) @binding(2) var<storage, read> cK: array<f32>;
@group(0) @binding(3) var<storage, read> cV: array<f32>;
@group(0) @binding(4) var<storage, read> cdO: array<f32>;
@group(0) @binding(5) var<storage, read> cLSE: array<f32>;
@group(0) @binding(6) var<storage, read> cDsum: array<f32>;
@group(0) @binding(7) var<storage, read_write> cdK: array<f32>;
@group(0) @binding(8) var<storage, read_write> cdV: array<f32>;

@compute @workgroup_size(64)
fn backward_key_value(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.B * p.Hkv * p.Tk) {
    return;
  }
  let j = idx % p.Tk;
  let hk = (idx / p.Tk) % p.Hkv;
  let b = idx / (p.Tk * p.Hkv);
  let group = p.H / p.Hkv;
  let kBase = p.kOff + b * p.kBS + j * p.kRS + hk * D;
  let vBase = p.vOff + b * p.vBS + j * p.vRS + hk * D;
  var k: array<f32, D>;
  var v: array<f32, D>;
  var dk: array<f32, D>;
  var dv: array<f32, D>;
  for (var d = 0u; d < D; d = d + 1u) {
    k[d] = cK[kBase + d];
    v[d] = cV[vBase + d];
    dk[d] = 0.0;
    dv[d] = 0.0;
  }
  // Query i sees key j when j <= qStart + i.
  var first = 0u;
  if (j > p.qStart) {
    first = j - p.qStart;
  }
  for (var g = 0u; g < group; g = g + 1u) {
    let h = hk * group + g;
    for (var i = first; i < p.Tq; i = i + 1u) {
      let qBase = p.qOff + b * p.qBS + i * p.qRS + h * D;
      let oBase = ((b * p.Tq + i) * p.H + h) * D;
      let row = (b * p.H + h) * p.Tq + i;
      var s = 0.0;
      var dp = 0.0;
      for (var d = 0u; d < D; d = d + 1u) {
        s = s + cQ[qBase + d] * k[d];
        dp = dp + cdO[oBase + d] * v[d];
      }
      let prob = exp(s * p.scale - cLSE[row]);
      let ds = prob * (dp - cDsum[row]) * p.scale;
      for (var d = 0u; d < D; d = d + 1u) {
        dv[d] = dv[d] + prob * cdO[oBase + d];
        dk[d] = dk[d] + ds * cQ[qBase + d];
      }
    }
  }
  let outBase = ((b * p.Tk + j) * p.Hkv + hk) * D;
  for (var d = 0u; d < D; d = d + 1u) {
    cdK[outBase + d] = dk[d];
    cdV[outBase + d] = dv[d];
  }
}
