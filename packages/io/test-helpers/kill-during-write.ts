// Child process for the atomic write test: starts an atomic write of a large safetensors file
// over argv[2], reports "writing" after the first chunks, then stalls until the parent kills it.
import { writeFileAtomic } from '../src/atomic.ts';

const target = process.argv[2]!;
const CHUNK_BYTES = 1 << 20;
const CHUNKS = 64;

async function* chunks(): AsyncGenerator<Uint8Array> {
  const header = new TextEncoder().encode(JSON.stringify({ big: { dtype: 'U8', shape: [CHUNK_BYTES * CHUNKS], data_offsets: [0, CHUNK_BYTES * CHUNKS] } }));
  const prefix = new Uint8Array(8 + header.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.length), true);
  prefix.set(header, 8);
  yield prefix;

  for (let i = 0; i < CHUNKS; i++) {
    if (i === 8) {
      process.stdout.write('writing\n');
      await new Promise((resolve) => setTimeout(resolve, 60_000));
    }
    yield new Uint8Array(CHUNK_BYTES).fill(i);
  }
}

await writeFileAtomic(target, chunks());
process.stdout.write('finished\n');
