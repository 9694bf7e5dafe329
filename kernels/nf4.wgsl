// Fused NF4 dequantize-and-multiply for a frozen 4-bit linear layer (QLoRA's base weights).
// W [N, K] (out, in) is stored as bitsandbytes stores it: the flattened row-major weight is cut
// into blocks of `blocksize` values, each value is a 4-bit index into the NF4 table scaled by its
// block's absmax, and two indices share a byte with the first value in the high nibble. The bytes
// are read as little-endian u32 words, so value i sits in word i / 8 at bit
// 8 * ((i / 2) % 4) + 4 * (1 - i % 2). No kernel here writes a full-precision W: each invocation
// rebuilds the weights it needs in registers.
//
// The absmax of block b is either stored as f32 bits (doubleQuant = 0), or double-quantized
// (doubleQuant = 1): an 8-bit index into the dynamic map `dmap`, four per word, scaled by the
// absmax2 of its group of 256 blocks and shifted by `offset`.
//
//   forward     - y [rows, N] = x [rows, K] · Wᵀ; one invocation per 4 output columns and ROWS
//                 rows, reading W one u32 word (8 values, one block) at a time. Needs K % 8 == 0.
//   backward    - dx [rows, K] = g [rows, N] · W; one invocation per 8 input columns (one word of
//                 each row of W) and ROWS rows. Needs K % 8 == 0.
//   forwardAny, backwardAny - the same products for any K, one value at a time; on lavapipe
//                 they ran several times slower than the word-wise kernels.
// ROWS (a define, 1 or 8) is how many rows share each dequantized weight. The block size is a
// power of two of at least 32, so the 8 values of a word never straddle two blocks when K % 8 == 0.

struct Params {
  rows: u32,
  inFeatures: u32,
  outFeatures: u32,
  blocksize: u32,
  doubleQuant: u32,
  blockShift: u32,
  offset: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> codes: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<u32>;
@group(0) @binding(4) var<storage, read> absmax2: array<f32>;
@group(0) @binding(5) var<storage, read> dmap: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const ROWS: u32 = {{ROWS}}u;
// Output columns per invocation of `forward`, so each loaded input value feeds OUTS products.
const OUTS: u32 = 4u;

var<private> NF4: array<f32, 16> = array<f32, 16>(
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
);

fn blockAbsmax(block: u32) -> f32 {
  if (p.doubleQuant == 0u) {
    return bitcast<f32>(scales[block]);
  }
  let q = (scales[block >> 2u] >> (8u * (block & 3u))) & 0xffu;
  return dmap[q] * absmax2[block / 256u] + p.offset;
}

fn code(i: u32) -> u32 {
  return (codes[i >> 3u] >> (8u * ((i >> 1u) & 3u) + 4u * (1u - (i & 1u)))) & 0xfu;
}

// Value e (0..7) of a word: byte e / 2, the high nibble for even e.
fn nibble(word: u32, e: u32) -> u32 {
  return (word >> (8u * (e >> 1u) + 4u * (1u - (e & 1u)))) & 0xfu;
}

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * OUTS;
  let row0 = gid.y * ROWS;
  if (n0 >= p.outFeatures || row0 >= p.rows) {
    return;
  }
  let K = p.inFeatures;
  let wordsPerRow = K >> 3u;
  var acc: array<f32, ROWS * OUTS>;
  var rowBase: array<u32, ROWS>;
  var start: array<u32, OUTS>;
  for (var r = 0u; r < ROWS; r++) {
    rowBase[r] = min(row0 + r, p.rows - 1u) * K;
  }
  for (var o = 0u; o < OUTS; o++) {
    start[o] = min(n0 + o, p.outFeatures - 1u) * wordsPerRow;
  }
  for (var a = 0u; a < ROWS * OUTS; a++) {
    acc[a] = 0.0;
  }

  for (var j = 0u; j < wordsPerRow; j++) {
    var word: array<u32, OUTS>;
    var scale: array<f32, OUTS>;
    for (var o = 0u; o < OUTS; o++) {
      word[o] = codes[start[o] + j];
      scale[o] = blockAbsmax(((start[o] + j) << 3u) >> p.blockShift);
    }
    let k0 = j << 3u;
    for (var e = 0u; e < 8u; e++) {
      var w: array<f32, OUTS>;
      for (var o = 0u; o < OUTS; o++) {
        w[o] = NF4[nibble(word[o], e)] * scale[o];
      }
      for (var r = 0u; r < ROWS; r++) {
        let xv = inp[rowBase[r] + k0 + e];
        for (var o = 0u; o < OUTS; o++) {
          acc[r * OUTS + o] += xv * w[o];
        }
      }
    }
  }

  for (var r = 0u; r < ROWS; r++) {
    for (var o = 0u; o < OUTS; o++) {
      if (row0 + r < p.rows && n0 + o < p.outFeatures) {
        out[(row0 + r) * p.outFeatures + n0 + o] = acc[r * OUTS + o];
      }
    }
  }
}

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  let row0 = gid.y * ROWS;
  let K = p.inFeatures;
  let wordsPerRow = K >> 3u;
  if (j >= wordsPerRow || row0 >= p.rows) {
    return;
  }
  let N = p.outFeatures;
  var acc: array<f32, ROWS * 8u>;
  var rowBase: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    rowBase[r] = min(row0 + r, p.rows - 1u) * N;
  }
  for (var a = 0u; a < ROWS * 8u; a++) {
    acc[a] = 0.0;
  }

  // Word j of every row of W holds columns 8j..8j+7, all in one block.
  for (var n = 0u; n < N; n++) {
    let index = n * wordsPerRow + j;
    let word = codes[index];
    let scale = blockAbsmax((index << 3u) >> p.blockShift);
    var w: array<f32, 8>;
    for (var e = 0u; e < 8u; e++) {
      w[e] = NF4[nibble(word, e)] * scale;
    }
    for (var r = 0u; r < ROWS; r++) {
      let g = inp[rowBase[r] + n];
      for (var e = 0u; e < 8u; e++) {
        acc[r * 8u + e] += g * w[e];
      }
    }
  }

  for (var r = 0u; r < ROWS; r++) {
    if (row0 + r < p.rows) {
      for (var e = 0u; e < 8u; e++) {
        out[(row0 + r) * K + (j << 3u) + e] = acc[r * 8u + e];
      }
    }
  }
}

@compute @workgroup_size(64)
fn forwardAny(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let row0 = gid.y * ROWS;
  if (n >= p.outFeatures || row0 >= p.rows) {
    return;
  }
  let K = p.inFeatures;
  var acc: array<f32, ROWS>;
  var rowBase: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    acc[r] = 0.0;
    rowBase[r] = min(row0 + r, p.rows - 1u) * K;
  }

  // Walk row n of W one absmax block at a time, so each block's scale is read once.
  let start = n * K;
  var k = 0u;
  loop {
    if (k >= K) {
      break;
    }
    let block = (start + k) / p.blocksize;
    let end = min(K, (block + 1u) * p.blocksize - start);
    let scale = blockAbsmax(block);
    for (; k < end; k++) {
      let w = NF4[code(start + k)] * scale;
      for (var r = 0u; r < ROWS; r++) {
        acc[r] += inp[rowBase[r] + k] * w;
      }
    }
  }

  for (var r = 0u; r < ROWS; r++) {
    if (row0 + r < p.rows) {
      out[(row0 + r) * p.outFeatures + n] = acc[r];
    }
  }
}

@compute @workgroup_size(64)
fn backwardAny(@builtin(global_invocation_id) gid: vec3<u32>) {
  let k = gid.x;
  let row0 = gid.y * ROWS;
  if (k >= p.inFeatures || row0 >= p.rows) {
    return;
  }
  let K = p.inFeatures;
  let N = p.outFeatures;
  var acc: array<f32, ROWS>;
  var rowBase: array<u32, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    acc[r] = 0.0;
    rowBase[r] = min(row0 + r, p.rows - 1u) * N;
  }

  // Column k of W: one value per row of W, each in its own block unless K < blocksize.
  for (var n = 0u; n < N; n++) {
    let i = n * K + k;
    let w = NF4[code(i)] * blockAbsmax(i / p.blocksize);
    for (var r = 0u; r < ROWS; r++) {
      acc[r] += inp[rowBase[r] + n] * w;
    }
  }

  for (var r = 0u; r < ROWS; r++) {
    if (row0 + r < p.rows) {
      out[(row0 + r) * K + k] = acc[r];
    }
  }
}
