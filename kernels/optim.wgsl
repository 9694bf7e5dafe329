// Optimizer updates applied in place, one invocation per element.
// Reference: adamwReference and emaReference in packages/tensor/src/optim.ts.

struct Params {
  n: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  weightDecay: f32,
  bias1: f32,
  bias2: f32,
  decay: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

// AdamW as torch.optim.AdamW: p *= 1 - lr * wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= (lr / bias1) * m / (sqrt(v) / sqrt(bias2) + eps), where g is the gradient times the
// clipping coefficient Clip[0] computed on the GPU (so clipping needs no read-back).
// Bindings: Grad, Clip -> Param, M, V.
@group(0) @binding(1) var<storage, read> aG: array<f32>;
@group(0) @binding(2) var<storage, read> aClip: array<f32>;
@group(0) @binding(3) var<storage, read_write> aP: array<f32>;
@group(0) @binding(4) var<storage, read_write> aM: array<f32>;
@group(0) @binding(5) var<storage, read_write> aV: array<f32>;

@compute @workgroup_size(256)
fn adamw(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) {
    return;
  }
  let g = aG[i] * aClip[0];
  let m = p.beta1 * aM[i] + (1.0 - p.beta1) * g;
  let v = p.beta2 * aV[i] + (1.0 - p.beta2) * g * g;
  aM[i] = m;
  aV[i] = v;
  let param = aP[i] * (1.0 - p.lr * p.weightDecay);
  let denom = sqrt(v) / sqrt(p.bias2) + p.eps;
  aP[i] = param - (p.lr / p.bias1) * m / denom;
}

// ema = decay * ema + (1 - decay) * param.
// Bindings: Param -> Ema.
@group(0) @binding(1) var<storage, read> eP: array<f32>;
@group(0) @binding(2) var<storage, read_write> eE: array<f32>;

@compute @workgroup_size(256)
fn ema(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) {
    return;
  }
  eE[i] = p.decay * eE[i] + (1.0 - p.decay) * eP[i];
}

// Clip[0] = min(1, maxNorm / (sqrt(sum of Sq[0..n]) + 1e-6)) and Clip[1] = the total norm,
// from the per-tensor sums of squares; as torch.nn.utils.clip_grad_norm_. maxNorm <= 0 disables clipping.
// Bindings: Sq -> Clip.
@group(0) @binding(1) var<storage, read> cSq: array<f32>;
@group(0) @binding(2) var<storage, read_write> cClip: array<f32>;

@compute @workgroup_size(1)
fn clip_coefficient() {
  var s = 0.0;
  for (var i = 0u; i < p.n; i = i + 1u) {
    s = s + cSq[i];
  }
  let norm = sqrt(s);
  cClip[1] = norm;
  if (p.lr <= 0.0) {
    cClip[0] = 1.0;
  } else {
    cClip[0] = min(1.0, p.lr / (norm + 1e-6));
  }
}
