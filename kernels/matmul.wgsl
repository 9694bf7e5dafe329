// Batched, strided matrix multiply: C[b] = alpha * A[b] · B[b] + beta * C[b], accumulated in f32.
// A is M x K, B is K x N, C is M x N, each addressed through its own strides, so transposes and
// the (batch, head) layouts of attention need no copies. Batch index z splits into
// (z / nb1, z % nb1); operand A uses inner index (z % nb1) / gA and B uses (z % nb1) / gB, which lets
// several query heads share one key/value head (grouped-query attention).
//
// Variants (packages/tensor/src/ops/matmul.ts picks one per adapter and shape class, measured by
// tuneMatmul in packages/tensor/src/tuning.ts). Every variant takes any strides and guards its edges.
//   tile4x4      - each invocation computes a 4x4 block of C from registers, no workgroup memory.
//                  The fallback on CPU implementations without subgroups, where workgroup memory is
//                  plain memory and only buys copies.
//   shared16     - 16x16 invocations share 64x64 tiles of A and B in workgroup memory; the default on
//                  discrete GPUs, where workgroup memory saves global loads.
//   subgroup8x8  - 8 invocations compute an 8x64 block of C, each an 8x8 block. Lane i loads the A
//                  value of row i only and subgroupBroadcast hands it to the others, so A costs one
//                  load per k for 8 rows instead of 8. On a CPU implementation a subgroup is one SIMD
//                  register and a broadcast is one shuffle, while every per-lane load is a gather:
//                  on lavapipe (2 cores) it ran 1024x1024 at 17.6-17.8 GFLOP/s on a quiet machine
//                  against 5.8 for tile4x4 (bench/matmul.ts; contiguous B takes subgroup8x8v). Needs the
//                  `subgroups` feature and subgroups of at
//                  least 8 invocations; it lives after the SUBGROUPS marker below, which
//                  matmul.ts compiles only on such devices, prefixed with `enable subgroups;`.
// Reference: matmulReference in packages/tensor/src/ops/matmul.ts.

{{ENABLE_F16}}

struct Params {
  M: u32, N: u32, K: u32, nb1: u32,
  sA0: u32, sA1: u32, sAm: u32, sAk: u32,
  sB0: u32, sB1: u32, sBk: u32, sBn: u32,
  sC0: u32, sC1: u32, sCm: u32, sCn: u32,
  gA: u32, gB: u32, offA: u32, offB: u32,
  offC: u32,
  alpha: f32, beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<{{B_TYPE}}>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

// B holds f32, or f16 for frozen half-precision weights (matmul.ts fills in B_TYPE and, for f16,
// the `enable f16;` directive); either way the products accumulate in f32.
fn loadB(i: u32) -> f32 {
  return f32(B[i]);
}

struct Bases { a: u32, b: u32, c: u32 }

fn bases(z: u32) -> Bases {
  let b0 = z / p.nb1;
  let b1 = z % p.nb1;
  return Bases(
    p.offA + b0 * p.sA0 + (b1 / p.gA) * p.sA1,
    p.offB + b0 * p.sB0 + (b1 / p.gB) * p.sB1,
    p.offC + b0 * p.sC0 + b1 * p.sC1,
  );
}

fn store(c: u32, row: u32, col: u32, v: f32) {
  let idx = c + row * p.sCm + col * p.sCn;
  if (p.beta == 0.0) {
    C[idx] = p.alpha * v;
  } else {
    C[idx] = p.alpha * v + p.beta * C[idx];
  }
}

@compute @workgroup_size(8, 8, 1)
fn tile4x4(@builtin(global_invocation_id) gid: vec3u) {
  let o = bases(gid.z);
  let row0 = gid.y * 4u;
  let col0 = gid.x * 4u;
  if (row0 >= p.M || col0 >= p.N) {
    return;
  }
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  if (row0 + 3u < p.M && col0 + 3u < p.N) {
    let a0 = o.a + row0 * p.sAm;
    let b0 = o.b + col0 * p.sBn;
    for (var k = 0u; k < p.K; k = k + 1u) {
      let ak = a0 + k * p.sAk;
      let av = vec4f(A[ak], A[ak + p.sAm], A[ak + 2u * p.sAm], A[ak + 3u * p.sAm]);
      let bk = b0 + k * p.sBk;
      let bv = vec4f(loadB(bk), loadB(bk + p.sBn), loadB(bk + 2u * p.sBn), loadB(bk + 3u * p.sBn));
      acc0 = acc0 + av.x * bv;
      acc1 = acc1 + av.y * bv;
      acc2 = acc2 + av.z * bv;
      acc3 = acc3 + av.w * bv;
    }
  } else {
    for (var k = 0u; k < p.K; k = k + 1u) {
      var av = vec4f(0.0);
      var bv = vec4f(0.0);
      for (var i = 0u; i < 4u; i = i + 1u) {
        if (row0 + i < p.M) {
          av[i] = A[o.a + (row0 + i) * p.sAm + k * p.sAk];
        }
        if (col0 + i < p.N) {
          bv[i] = loadB(o.b + k * p.sBk + (col0 + i) * p.sBn);
        }
      }
      acc0 = acc0 + av.x * bv;
      acc1 = acc1 + av.y * bv;
      acc2 = acc2 + av.z * bv;
      acc3 = acc3 + av.w * bv;
    }
  }
  let accs = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i = i + 1u) {
    if (row0 + i < p.M) {
      for (var j = 0u; j < 4u; j = j + 1u) {
        if (col0 + j < p.N) {
          store(o.c, row0 + i, col0 + j, accs[i][j]);
        }
      }
    }
  }
}

const TILE = 64u;
var<workgroup> As: array<f32, 1024>; // [TILE rows][16 k]
var<workgroup> Bs: array<f32, 1024>; // [16 k][TILE cols]

@compute @workgroup_size(16, 16, 1)
fn shared16(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let o = bases(wid.z);
  let rowBase = wid.y * TILE;
  let colBase = wid.x * TILE;
  let t = lid.y * 16u + lid.x;
  var acc: array<vec4f, 4>;
  for (var k0 = 0u; k0 < p.K; k0 = k0 + 16u) {
    // 256 invocations load 1024 elements of each tile, 4 each.
    for (var e = 0u; e < 4u; e = e + 1u) {
      let idx = t * 4u + e;
      let ar = idx / 16u;
      let ak = idx % 16u;
      var av = 0.0;
      if (rowBase + ar < p.M && k0 + ak < p.K) {
        av = A[o.a + (rowBase + ar) * p.sAm + (k0 + ak) * p.sAk];
      }
      As[idx] = av;
      let bk = idx / TILE;
      let bc = idx % TILE;
      var bv = 0.0;
      if (k0 + bk < p.K && colBase + bc < p.N) {
        bv = loadB(o.b + (k0 + bk) * p.sBk + (colBase + bc) * p.sBn);
      }
      Bs[idx] = bv;
    }
    workgroupBarrier();
    for (var k = 0u; k < 16u; k = k + 1u) {
      let bv = vec4f(Bs[k * TILE + lid.x * 4u], Bs[k * TILE + lid.x * 4u + 1u], Bs[k * TILE + lid.x * 4u + 2u], Bs[k * TILE + lid.x * 4u + 3u]);
      for (var i = 0u; i < 4u; i = i + 1u) {
        acc[i] = acc[i] + As[(lid.y * 4u + i) * 16u + k] * bv;
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i = i + 1u) {
    let row = rowBase + lid.y * 4u + i;
    if (row < p.M) {
      for (var j = 0u; j < 4u; j = j + 1u) {
        let col = colBase + lid.x * 4u + j;
        if (col < p.N) {
          store(o.c, row, col, acc[i][j]);
        }
      }
    }
  }
}

// SUBGROUPS: everything below needs `enable subgroups;` (matmul.ts adds it).

// One workgroup of 8 lanes covers rows [row0, row0 + 8) and columns [col0, col0 + 64). Lane l owns
// columns col0 + 4l + (0..3) and col0 + 32 + 4l + (0..3) of all 8 rows. The workgroup must be one
// subgroup-aligned group of 8 (subgroup size >= 8), so lane l's subgroup_invocation_id is l mod 8.
@compute @workgroup_size(8, 1, 1)
fn subgroup8x8(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(subgroup_invocation_id) lane: u32,
) {
  let o = bases(wid.z);
  let row0 = wid.y * 8u;
  let col0 = wid.x * 64u + lid.x * 4u;

  // Out-of-range rows and columns load a clamped in-range element and are never stored, so every lane
  // runs the whole k loop and the broadcasts stay in uniform control flow.
  let aRow = o.a + min(row0 + lane % 8u, p.M - 1u) * p.sAm;
  var colL: vec4u;
  var colR: vec4u;
  for (var j = 0u; j < 4u; j = j + 1u) {
    colL[j] = o.b + min(col0 + j, p.N - 1u) * p.sBn;
    colR[j] = o.b + min(col0 + 32u + j, p.N - 1u) * p.sBn;
  }

  // B is read as 4 scalars per vec4 so any stride works; subgroup8x8v below is the fast path for
  // contiguous rows of B.
  var accL: array<vec4f, 8>;
  var accR: array<vec4f, 8>;
  for (var k = 0u; k < p.K; k = k + 1u) {
    let bk = k * p.sBk;
    let bL = vec4f(loadB(colL.x + bk), loadB(colL.y + bk), loadB(colL.z + bk), loadB(colL.w + bk));
    let bR = vec4f(loadB(colR.x + bk), loadB(colR.y + bk), loadB(colR.z + bk), loadB(colR.w + bk));
    let a = A[aRow + k * p.sAk];
    let av = array<f32, 8>(
      subgroupBroadcast(a, 0u), subgroupBroadcast(a, 1u), subgroupBroadcast(a, 2u), subgroupBroadcast(a, 3u),
      subgroupBroadcast(a, 4u), subgroupBroadcast(a, 5u), subgroupBroadcast(a, 6u), subgroupBroadcast(a, 7u),
    );
    for (var r = 0u; r < 8u; r = r + 1u) {
      accL[r] = fma(vec4f(av[r]), bL, accL[r]);
      accR[r] = fma(vec4f(av[r]), bR, accR[r]);
    }
  }

  for (var r = 0u; r < 8u; r = r + 1u) {
    let row = row0 + r;
    if (row < p.M) {
      for (var j = 0u; j < 4u; j = j + 1u) {
        if (col0 + j < p.N) {
          store(o.c, row, col0 + j, accL[r][j]);
        }
        if (col0 + 32u + j < p.N) {
          store(o.c, row, col0 + 32u + j, accR[r][j]);
        }
      }
    }
  }
}

// The same as subgroup8x8 for a contiguous, 16-byte aligned B: f32 with sBn == 1, N a multiple of
// 4, and offB, sB0, sB1 and sBk multiples of 4, which matmul.ts checks. B's 4 columns then come in
// one vec4 load through Bv, a second binding of B's buffer, instead of 4 gathered scalars.
@group(0) @binding(4) var<storage, read> Bv: array<vec4f>;

@compute @workgroup_size(8, 1, 1)
fn subgroup8x8v(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
  @builtin(subgroup_invocation_id) lane: u32,
) {
  let o = bases(wid.z);
  let row0 = wid.y * 8u;
  let col0 = wid.x * 64u + lid.x * 4u;
  let aRow = o.a + min(row0 + lane % 8u, p.M - 1u) * p.sAm;
  // Out-of-range column groups read the last in-range group and are never stored.
  let vL = (o.b + min(col0, p.N - 4u)) / 4u;
  let vR = (o.b + min(col0 + 32u, p.N - 4u)) / 4u;
  let vk = p.sBk / 4u;

  var accL: array<vec4f, 8>;
  var accR: array<vec4f, 8>;
  for (var k = 0u; k < p.K; k = k + 1u) {
    let bL = Bv[vL + k * vk];
    let bR = Bv[vR + k * vk];
    let a = A[aRow + k * p.sAk];
    let av = array<f32, 8>(
      subgroupBroadcast(a, 0u), subgroupBroadcast(a, 1u), subgroupBroadcast(a, 2u), subgroupBroadcast(a, 3u),
      subgroupBroadcast(a, 4u), subgroupBroadcast(a, 5u), subgroupBroadcast(a, 6u), subgroupBroadcast(a, 7u),
    );
    for (var r = 0u; r < 8u; r = r + 1u) {
      accL[r] = fma(vec4f(av[r]), bL, accL[r]);
      accR[r] = fma(vec4f(av[r]), bR, accR[r]);
    }
  }

  for (var r = 0u; r < 8u; r = r + 1u) {
    let row = row0 + r;
    if (row < p.M) {
      for (var j = 0u; j < 4u; j = j + 1u) {
        if (col0 + j < p.N) {
          store(o.c, row, col0 + j, accL[r][j]);
        }
        if (col0 + 32u + j < p.N) {
          store(o.c, row, col0 + 32u + j, accR[r][j]);
        }
      }
    }
  }
}
