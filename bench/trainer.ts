// Step time, tokens/s and peak GPU bytes of SFT (tema_beta 0) and TEMA (tema_beta 1) training
// steps, with LoRA r 8 on all 7 projections:
//   - stories260K (fixtures), batch 8 x 128 from tinystories_train_head.txt;
//   - a SmolLM2-135M-shaped model with random weights, batch 1 x 64 (few steps: slow on lavapipe).
// The first step of each run compiles pipelines and allocates the optimizer state and is not timed.
// Peak bytes are the pool's peak above the bytes live before the trainer was built. Prints one
// line per run, then one JSON line with every figure. Never fails on time.
//   npx bun bench/trainer.ts
import { fixture, loadModel, randomModel, SMOLLM2_135M_CONFIG, type CausalLM } from '@tematrainer/models';
import { getPeftModel } from '@tematrainer/peft';
import { engine, init } from '@tematrainer/tensor';
import { ChunkSampler, loadCorpus, TemaTrainer, type Batch } from '@tematrainer/tema';

const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

interface RunFigures {
  step_ms: number;
  tokens_per_second: number;
  peak_bytes: number;
}

/** Time `steps` training steps of one kind on a fixed batch, after one untimed step. */
async function measure(model: CausalLM, batch: Batch, temaBeta: number, steps: number): Promise<RunFigures> {
  const pool = engine().pool;
  await engine().sync();
  const before = pool.liveBytes;
  pool.resetPeak();

  const lora = getPeftModel(model, { r: 8, loraAlpha: 16, targetModules: PROJECTIONS });
  const source = { next: () => batch, state: { epoch: 0, position: 0, seed: 0 }, restore() {} };
  const trainer = new TemaTrainer({
    model,
    lora,
    train: source,
    args: { maxSteps: steps + 1, learningRate: 1e-4, outputDir: 'runs/bench' },
    tema: { temaBeta },
    progressLabel: null,
    writeMetrics: false,
  });

  trainer.trainStep();
  await trainer.flushMetrics();
  const start = performance.now();
  for (let i = 0; i < steps; i++) trainer.trainStep();
  // Reading the losses back waits for the GPU to finish every step.
  await trainer.flushMetrics();
  const seconds = (performance.now() - start) / 1000;
  const peak = pool.peakBytes - before;

  trainer.dispose();
  for (const t of trainer.ema) t.dispose();
  lora.unload();
  const tokens = steps * batch.batchSize * batch.seqLen;
  return { step_ms: (1000 * seconds) / steps, tokens_per_second: tokens / seconds, peak_bytes: peak };
}

async function compare(name: string, model: CausalLM, batch: Batch, steps: number): Promise<Record<string, unknown>> {
  const sft = await measure(model, batch, 0, steps);
  const tema = await measure(model, batch, 1, steps);
  const ratio = tema.step_ms / sft.step_ms;
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  const shape = `${batch.batchSize}x${batch.seqLen}`;
  for (const [kind, f] of [['SFT ', sft], ['TEMA', tema]] as const) {
    console.log(`${name} ${shape} ${kind}: ${f.step_ms.toFixed(1)} ms/step, ${f.tokens_per_second.toFixed(0)} tokens/s, peak ${mib(f.peak_bytes)} MiB`);
  }
  console.log(`${name} ${shape} TEMA/SFT step time: ${ratio.toFixed(2)}, extra peak ${mib(tema.peak_bytes - sft.peak_bytes)} MiB`);
  return { model: name, batch: shape, steps, sft, tema, tema_over_sft: ratio };
}

const { info } = await init();
const results: Record<string, unknown>[] = [];

const stories = await loadModel(fixture('stories260K-hf'));
const corpus = await loadCorpus(fixture('corpora/tinystories_train_head.txt'), stories.tokenizer);
results.push(await compare('stories260K', stories.model, new ChunkSampler(corpus.train, 8, 0).next(), 10));
stories.model.dispose();

const smol = randomModel(SMOLLM2_135M_CONFIG, 0);
const seqLen = 64;
const ids = Int32Array.from({ length: seqLen }, (_, i) => (i * 7919 + 13) % SMOLLM2_135M_CONFIG.vocabSize);
const smolBatch: Batch = { inputIds: ids, labels: ids, attentionMask: new Int32Array(seqLen).fill(1), batchSize: 1, seqLen };
results.push(await compare('smollm2-135m-random', smol, smolBatch, 2));
smol.dispose();

console.log(JSON.stringify({ bench: 'trainer', adapter: info.adapterInfo.description, runtime: info.runtime, results }));
