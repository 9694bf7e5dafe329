// Casts between f32 and f16 storage (needs the shader-f16 feature). Each invocation converts
// two elements so that the f16 side is addressed as whole 32-bit words.

enable f16;

struct Params {
  n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Bindings: In (f32) -> Out (pairs of f16).
@group(0) @binding(1) var<storage, read> hIn: array<f32>;
@group(0) @binding(2) var<storage, read_write> hOut: array<vec2<f16>>;

@compute @workgroup_size(256)
fn to_f16(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (2u * i >= p.n) {
    return;
  }
  var b = 0.0;
  if (2u * i + 1u < p.n) {
    b = hIn[2u * i + 1u];
  }
  hOut[i] = vec2<f16>(f16(hIn[2u * i]), f16(b));
}

// Bindings: In (pairs of f16) -> Out (f32).
@group(0) @binding(1) var<storage, read> fIn: array<vec2<f16>>;
@group(0) @binding(2) var<storage, read_write> fOut: array<f32>;

@compute @workgroup_size(256)
fn to_f32(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (2u * i >= p.n) {
    return;
  }
  let v = fIn[i];
  fOut[2u * i] = f32(v.x);
  if (2u * i + 1u < p.n) {
    fOut[2u * i + 1u] = f32(v.y);
  }
}
