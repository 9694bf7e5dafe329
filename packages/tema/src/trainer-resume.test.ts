import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, loadModel, type LoadedModel } from '@tematrainer/models';
import { getPeftModel } from '@tematrainer/peft';
import { engine, init } from '@tematrainer/tensor';
import { resumeFromCheckpoint } from './checkpoint.js';
import { ChunkSampler, loadCorpus, type Batch } from './data/index.js';
import { loadTrainingData, trainingBatches, type TrainingData } from './dataset-source.js';
import type { LogRecord } from './sft-trainer.js';
import { SftTrainer } from './sft-trainer.js';
import { TemaTrainer } from './tema-trainer.js';

const dir = mkdtempSync(join(tmpdir(), 'tema-resume-'));
let loaded: LoadedModel;
let data: TrainingData;

const TOTAL_STEPS = 6;
const STOP_AT = 3;

beforeAll(async () => {
  await init();
  loaded = await loadModel(fixture('stories260K-hf'));
  const file = join(dir, 'train.jsonl');
  const lines = Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `Story ${i}: a dog`, completion: ` ran to the park ${i % 5} times.` }));
  writeFileSync(file, `${lines.join('\n')}\n`);
  data = await loadTrainingData(file, loaded.tokenizer, { maxLength: 32, completionOnlyLoss: true, packing: false });
});

afterAll(() => loaded.model.dispose());

/** TEMA with beta 1 and LoRA dropout 0.1, so the dropout counters, EMA and data order all matter on resume. */
function makeTrainer(loraSeed: number): TemaTrainer {
  const lora = getPeftModel(loaded.model, { r: 4, loraAlpha: 8, loraDropout: 0.1, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: loraSeed });
  return new TemaTrainer({
    model: loaded.model,
    lora,
    train: trainingBatches(data, loaded.tokenizer, 4, 7),
    args: { maxSteps: TOTAL_STEPS, learningRate: 5e-3, warmupSteps: 2, lrSchedulerType: 'linear', loggingSteps: 1, outputDir: dir, seed: 7 },
    tema: { temaBeta: 1, emaDecay: 0.8 },
    progressLabel: null,
    writeMetrics: false,
  });
}

function close(trainer: TemaTrainer): void {
  trainer.dispose();
  for (const t of trainer.ema) t.dispose();
  trainer.lora.unload();
}

const logs = (trainer: SftTrainer, after = 0) => trainer.history.filter((h): h is LogRecord => 'loss' in h && h.step > after);

async function uninterruptedRun(): Promise<LogRecord[]> {
  const trainer = makeTrainer(1);
  await trainer.trainLoop();
  const records = logs(trainer);
  close(trainer);
  return records;
}

describe('resume', () => {
  it('same seed gives the same losses', async () => {
    const first = await uninterruptedRun();
    const second = await uninterruptedRun();
    expect(first).toHaveLength(TOTAL_STEPS);
    for (let i = 0; i < TOTAL_STEPS; i++) {
      expect(second[i].loss, `step ${i + 1}`).toBe(first[i].loss);
      expect(second[i].kl, `step ${i + 1}`).toBe(first[i].kl);
    }
  });

  it('continues with the losses of an uninterrupted run', async () => {
    const reference = await uninterruptedRun();

    const stopped = makeTrainer(1);
    await stopped.trainLoop({ stopAt: STOP_AT });
    const checkpoint = await stopped.saveCheckpoint();
    close(stopped);

    // Another LoRA init seed: every value that matters must come from the checkpoint.
    const resumed = makeTrainer(99);
    await resumeFromCheckpoint(resumed, checkpoint);
    expect(resumed.globalStep).toBe(STOP_AT);
    await resumed.trainLoop();
    const after = logs(resumed, STOP_AT);
    close(resumed);

    expect(after.map((r) => r.step)).toEqual([4, 5, 6]);
    for (let i = 0; i < after.length; i++) {
      const expected = reference[STOP_AT + i];
      expect(Math.abs(after[i].loss - expected.loss), `loss at step ${expected.step}`).toBeLessThan(1e-5);
      expect(Math.abs(after[i].ce - expected.ce), `ce at step ${expected.step}`).toBeLessThan(1e-5);
      expect(Math.abs(after[i].kl! - expected.kl!), `kl at step ${expected.step}`).toBeLessThan(1e-5);
      expect(after[i].learning_rate).toBe(expected.learning_rate);
    }
    // The divergence is non-zero, so the EMA teacher did take part.
    expect(after[0].kl!).toBeGreaterThan(1e-6);
  });
});

describe('memory', () => {
  /** Peak bytes above those live before the trainer is built, over two steps on `batch`. */
  async function stepPeak(kind: 'sft' | 'tema', batch: Batch): Promise<{ peak: number; emaBytes: number }> {
    const pool = engine().pool;
    await engine().sync();
    const before = pool.liveBytes;
    pool.resetPeak();
    const lora = getPeftModel(loaded.model, { r: 8, loraAlpha: 16, targetModules: 'all-linear' });
    const source = { next: () => batch, state: { epoch: 0, position: 0, seed: 0 }, restore() {} };
    const options = { model: loaded.model, lora, train: source, args: { maxSteps: 2, outputDir: dir }, progressLabel: null, writeMetrics: false };
    const trainer = kind === 'sft' ? new SftTrainer(options) : new TemaTrainer({ ...options, tema: { temaBeta: 1 } });
    trainer.trainStep();
    trainer.trainStep();
    await trainer.flushMetrics();
    await engine().sync();
    const peak = pool.peakBytes - before;
    const emaBytes = trainer instanceof TemaTrainer ? trainer.ema.reduce((n, t) => n + t.size * 4, 0) : 0;
    trainer.dispose();
    if (trainer instanceof TemaTrainer) for (const t of trainer.ema) t.dispose();
    lora.unload();
    return { peak, emaBytes };
  }

  it('TEMA costs at most the EMA and teacher logits more', async () => {
    const corpus = await loadCorpus(fixture('corpora/tinystories_train_head.txt'), loaded.tokenizer);
    const batch = new ChunkSampler(corpus.train, 8, 0).next();
    expect([batch.batchSize, batch.seqLen]).toEqual([8, 128]);

    const sft = await stepPeak('sft', batch);
    const tema = await stepPeak('tema', batch);
    const vocab = loaded.model.config.vocabSize;
    const teacherLogits = 8 * 128 * vocab * 4;
    // The pool rounds each buffer up to its size class (at most 25% more), which the 1 MiB absorbs.
    const allowance = tema.emaBytes + teacherLogits + 1024 * 1024;
    console.log(`peak bytes of 2 steps, 8 x 128: SFT ${sft.peak}, TEMA ${tema.peak} (+${tema.peak - sft.peak}; allowed +${allowance})`);

    expect(sft.peak).toBeGreaterThan(0);
    expect(tema.emaBytes).toBeGreaterThan(0);
    expect(tema.peak - sft.peak).toBeLessThanOrEqual(allowance);
  });
});
