// Forward and generation throughput of whole models, with the peak GPU bytes of each run:
//   - stories260K (llama2.c checkpoint from the fixtures): forward at batch 1 x 128 and 8 x 128,
//     greedy generation of 64 tokens after a one-token prompt, with the KV cache;
//   - a SmolLM2-135M-shaped Llama with random weights: forward at 1 x 64. The 8 x 64 forward and
//     generation run only when one forward pass takes under SLOW_FORWARD_SECONDS, because
//     software adapters take seconds per pass and the bench should stay within a few minutes.
// Peak bytes are the most GPU memory live during the run beyond what was live before it (the
// weights), from the engine's buffer pool. Prints one line per figure, then one JSON line.
// Never fails on time.
//   npx bun bench/models.ts
import { fixture, KVCache, loadModel, randomModel, SMOLLM2_135M_CONFIG, type CausalLM } from '@tematrainer/models';
import { engine, fromData, init, noGrad, tidy } from '@tematrainer/tensor';

const SLOW_FORWARD_SECONDS = 5;

interface Figure {
  model: string;
  run: string;
  tokensPerSecond: number;
  seconds: number;
  peakBytes: number;
}

const figures: Figure[] = [];

/** Time `work` once after a warm-up call, and the peak GPU bytes above what was live before it. */
async function measure(model: string, run: string, tokens: number, work: () => Promise<void>): Promise<Figure> {
  await work();
  const pool = engine().pool;
  const before = pool.liveBytes;
  pool.resetPeak();
  const start = performance.now();
  await work();
  const seconds = (performance.now() - start) / 1000;
  const figure = { model, run, tokensPerSecond: tokens / seconds, seconds, peakBytes: pool.peakBytes - before };
  figures.push(figure);
  console.log(
    `${model.padEnd(14)} ${run.padEnd(20)} ${figure.tokensPerSecond.toFixed(1).padStart(9)} tokens/s  ${seconds.toFixed(3)} s  peak +${(figure.peakBytes / 2 ** 20).toFixed(1)} MiB`,
  );
  return figure;
}

function ids(batch: number, seq: number, vocab: number): number[] {
  return Array.from({ length: batch * seq }, (_, i) => (i * 7919 + 1) % vocab);
}

async function forward(model: CausalLM, batch: number, seq: number): Promise<void> {
  const logits = tidy(() => noGrad(() => model.forward(fromData(ids(batch, seq, model.config.vocabSize), [batch, seq], 'i32'))));
  await engine().sync();
  logits.dispose();
}

/** Greedy decoding as generate() does it (one forward pass and one read-back per token), without a tokenizer. */
async function greedy(model: CausalLM, newTokens: number): Promise<void> {
  const cache = new KVCache(model.config, 1, newTokens + 1);
  try {
    let input = [1];
    for (let n = 0; n < newTokens; n++) {
      const logits = tidy(() => noGrad(() => model.forward(fromData(input, [1, input.length], 'i32'), { cache, lastOnly: true })));
      const row = (await logits.data()) as Float32Array;
      logits.dispose();
      let best = 0;
      for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
      input = [best];
    }
  } finally {
    cache.dispose();
  }
}

const { info } = await init();
console.log(`adapter: ${info.adapterInfo.description || info.adapterInfo.vendor || 'unknown'} (${info.runtime}${info.isSoftware ? ', software' : ''})`);

const stories = (await loadModel(fixture('stories260K/stories260K.bin'))).model;
await measure('stories260K', 'forward 1x128', 128, () => forward(stories, 1, 128));
await measure('stories260K', 'forward 8x128', 1024, () => forward(stories, 8, 128));
await measure('stories260K', 'greedy 64 tokens', 64, () => greedy(stories, 64));
stories.dispose();

const smol = randomModel(SMOLLM2_135M_CONFIG, 0);
const params = [...smol.params.values()].reduce((s, t) => s + t.size, 0);
console.log(`SmolLM2-135M shape, random weights: ${(params / 1e6).toFixed(1)}M parameters`);
const first = await measure('smollm2-135m', 'forward 1x64', 64, () => forward(smol, 1, 64));
if (first.seconds < SLOW_FORWARD_SECONDS) {
  await measure('smollm2-135m', 'forward 8x64', 512, () => forward(smol, 8, 64));
  await measure('smollm2-135m', 'greedy 64 tokens', 64, () => greedy(smol, 64));
} else {
  console.log(`smollm2-135m: one forward pass took ${first.seconds.toFixed(1)} s, so 8x64 and generation are skipped`);
}
smol.dispose();

console.log(JSON.stringify({ bench: 'models', adapter: info.adapterInfo.description || info.adapterInfo.vendor, runtime: info.runtime, figures }));
