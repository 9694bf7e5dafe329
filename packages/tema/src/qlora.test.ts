import { beforeAll, describe, expect, it } from 'vitest';
import { fixture, generate, loadModel, type LoadedModel } from '@tematrainer/models';
import { getPeftModel } from '@tematrainer/peft';
import { disposeQuantizedLayers, quantizeModel, type QuantizeReport } from '@tematrainer/quant';
import { init } from '@tematrainer/tensor';
import { ChunkSampler, chunkBatch, corpusSplit, loadCorpus, readCorpus, tokenizeCorpus, type Batch } from './data/index.js';
import { evaluateModel } from './evaluate.js';
import { TemaTrainer } from './tema-trainer.js';

// QLoRA end to end on stories260K-hf: a 4-bit NF4 base against the f32 one, then TEMA on top.

const MODEL = fixture('stories260K-hf');
const PROMPT = 'Once upon a time';
const GREEDY_TOKENS = 10;

let evalBatches: Batch[];

function batchesOf(chunks: Int32Array[], size: number): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < chunks.length; i += size) out.push(chunkBatch(chunks.slice(i, i + size)));
  return out;
}

async function measure(loaded: LoadedModel): Promise<{ perplexity: number; greedy: number[] }> {
  const { perplexity } = await evaluateModel(loaded.model, evalBatches);
  const prompt = loaded.tokenizer.encode(PROMPT, { addBos: true, addEos: false });
  const { newIds } = await generate(loaded.model, loaded.tokenizer, prompt, { maxNewTokens: GREEDY_TOKENS, stopIds: [] });
  return { perplexity, greedy: newIds };
}

beforeAll(async () => {
  await init();
  const loaded = await loadModel(MODEL);
  const split = await loadCorpus(fixture('corpora/tinystories_train_head.txt'), loaded.tokenizer, { maxEvalChunks: 16 });
  evalBatches = batchesOf(split.eval, 4);
  loaded.model.dispose();
});

describe('stories260K with a 4-bit base', () => {
  let full: { perplexity: number; greedy: number[] };

  beforeAll(async () => {
    const loaded = await loadModel(MODEL);
    full = await measure(loaded);
    loaded.model.dispose();
  });

  for (const doubleQuant of [false, true]) {
    it(`stays close to f32${doubleQuant ? ' with double quant' : ''}`, async () => {
      const loaded = await loadModel(MODEL);
      const report: QuantizeReport = await quantizeModel(loaded.model, { loadIn4bit: true, bnb4bitUseDoubleQuant: doubleQuant });
      expect(report.quantized.length).toBe(loaded.config.numHiddenLayers * 7);
      expect(report.kept).toEqual(['lm_head']);
      expect(report.bytesAfter).toBeLessThan(report.bytesBefore / 6);

      const quantized = await measure(loaded);
      const same = quantized.greedy.filter((id, i) => id === full.greedy[i]).length;
      console.log(
        `stories260K nf4${doubleQuant ? ' + double quant' : ''}: perplexity ${quantized.perplexity.toFixed(3)} ` +
          `(f32 ${full.perplexity.toFixed(3)}), ${same}/${GREEDY_TOKENS} greedy tokens equal, ` +
          `linear weights ${report.bytesBefore} -> ${report.bytesAfter} bytes`,
      );
      expect(Math.abs(quantized.perplexity / full.perplexity - 1)).toBeLessThan(0.15);
      expect(same).toBeGreaterThanOrEqual(7);
      loaded.model.dispose();
      disposeQuantizedLayers(loaded.model);
    });
  }
});

describe('TEMA on a 4-bit base', () => {
  it('lowers the loss in 10 steps', async () => {
    const loaded = await loadModel(MODEL);
    await quantizeModel(loaded.model, { loadIn4bit: true, bnb4bitUseDoubleQuant: true });
    // The first 20,000 characters are plenty for 8 chunks and keep tokenization short.
    const text = (await readCorpus(fixture('corpora/tinyshakespeare.txt'))).slice(0, 20_000);
    const split = corpusSplit(tokenizeCorpus(text, loaded.tokenizer), { chunkLength: 64 });
    const chunks = split.train.slice(0, 8);
    const lora = getPeftModel(loaded.model, { r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj', 'down_proj'] });
    const trainer = new TemaTrainer({
      model: loaded.model,
      lora,
      train: new ChunkSampler(chunks, 4, 0),
      args: { learningRate: 1e-2, lrSchedulerType: 'constant', maxSteps: 10, outputDir: '/tmp/unused' },
      tema: { emaDecay: 0.9 },
      progressLabel: null,
      writeMetrics: false,
    });
    const fixed = batchesOf(chunks, 4);

    const before = await evaluateModel(loaded.model, fixed);
    for (let step = 0; step < 10; step++) trainer.trainStep();
    const record = await trainer.flushMetrics();
    const after = await evaluateModel(loaded.model, fixed);
    console.log(`TEMA on nf4 stories260K, 10 steps on tinyshakespeare: loss ${before.loss.toFixed(4)} -> ${after.loss.toFixed(4)} (last KL ${record?.kl})`);
    expect(after.loss).toBeLessThan(before.loss - 0.05);

    trainer.dispose();
    lora.unload();
    loaded.model.dispose();
    disposeQuantizedLayers(loaded.model);
  });
});
