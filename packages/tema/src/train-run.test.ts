import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openSafetensors } from '@tematrainer/io';
import { fixture, loadModel, SMOLLM2_135M_CONFIG, randomModel } from '@tematrainer/models';
import { getPeftModel } from '@tematrainer/peft';
import { ConfigError, FormatError, init } from '@tematrainer/tensor';
import { resumeFromCheckpoint } from './checkpoint.js';
import { loadTrainingData, trainingBatches } from './dataset-source.js';
import { TemaTrainer } from './tema-trainer.js';
import { parseTrainConfig } from './train-config.js';
import { latestCheckpoint, runTraining } from './train-run.js';

const dir = mkdtempSync(join(tmpdir(), 'tema-train-'));
const model = fixture('stories260K-hf');
const trainFile = join(dir, 'train.jsonl');

/** Short prompt/completion records in the style of the stories the model was trained on. */
function writeTinyDataset(file: string, count: number): void {
  const names = ['Lily', 'Tom', 'Sue', 'Ben'];
  const things = ['ball', 'cat', 'tree', 'cake'];
  const lines = Array.from({ length: count }, (_, i) => {
    const name = names[i % 4];
    const thing = things[Math.floor(i / 4) % 4];
    return JSON.stringify({ prompt: `${name} had a ${thing}.`, completion: ` ${name} loved the ${thing} very much.` });
  });
  writeFileSync(file, `${lines.join('\n')}\n`);
}

function config(outputDir: string, extra: Record<string, unknown> = {}) {
  return parseTrainConfig({
    model_name_or_path: model,
    train_file: trainFile,
    output_dir: outputDir,
    max_steps: 9,
    per_device_train_batch_size: 8,
    learning_rate: 1e-2,
    lr_scheduler_type: 'constant',
    logging_steps: 3,
    max_length: 64,
    lora: { r: 4, lora_alpha: 8, target_modules: 'all-linear' },
    tema: { tema_beta: 1, ema_decay: 0.9 },
    ...extra,
  });
}

const quiet = { log: () => {}, progress: false };

beforeAll(async () => {
  await init();
  writeTinyDataset(trainFile, 32);
});

describe('runTraining', () => {
  it('writes the adapter and the loss falls', async () => {
    const out = join(dir, 'run');
    writeTinyDataset(join(dir, 'eval.jsonl'), 8);
    const result = await runTraining(config(out, { eval_file: join(dir, 'eval.jsonl'), eval_steps: 6 }), quiet);

    expect(result.stopped).toBe(false);
    expect(result.globalStep).toBe(9);
    expect(result.losses).toHaveLength(3);
    expect(result.losses[2]).toBeLessThan(result.losses[0] * 0.7);

    const adapterConfig = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(adapterConfig.peft_type).toBe('LORA');
    expect(adapterConfig.r).toBe(4);
    expect(adapterConfig.base_model_name_or_path).toBe(model);
    const weights = await openSafetensors(join(out, 'adapter_model.safetensors'));
    // 5 layers x 7 projections x (A, B)
    expect(weights.tensors.size).toBe(70);
    expect(weights.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')?.shape).toEqual([4, 64]);
    const ema = await openSafetensors(join(out, 'adapter_ema.safetensors'));
    expect(ema.tensors.has('ema.base_model.model.model.layers.4.mlp.down_proj.lora_B.weight')).toBe(true);

    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const evals = metrics.filter((m) => 'eval_loss' in m);
    expect(evals.map((m) => m.step)).toEqual([6, 9]);
    expect(result.evaluation?.eval_loss).toBe(evals[1].eval_loss);
  });

  it('plain SFT writes no EMA file', async () => {
    const out = join(dir, 'sft');
    const { tema: _tema, ...rest } = config(out, { max_steps: 2 });
    const sft = { ...rest, tema: { ...config(out).tema, temaBeta: 0 } };
    await runTraining(sft, quiet);
    expect(existsSync(join(out, 'adapter_model.safetensors'))).toBe(true);
    expect(existsSync(join(out, 'adapter_ema.safetensors'))).toBe(false);
  });

  it('stop saves a checkpoint and resume continues', async () => {
    const out = join(dir, 'stopped');
    let steps = 0;
    const stopped = await runTraining(config(out), { ...quiet, shouldStop: () => ++steps === 4 });
    expect(stopped.stopped).toBe(true);
    expect(stopped.globalStep).toBe(4);
    expect(stopped.savedTo).toBe(join(out, 'checkpoint-4'));
    expect(latestCheckpoint(out)).toBe(join(out, 'checkpoint-4'));

    const resumed = await runTraining(config(out, { resume_from_checkpoint: true }), quiet);
    expect(resumed.stopped).toBe(false);
    expect(resumed.globalStep).toBe(9);
    expect(existsSync(join(out, 'adapter_model.safetensors'))).toBe(true);
  });

  it('resume true without a checkpoint is an error', async () => {
    const run = runTraining(config(join(dir, 'empty'), { resume_from_checkpoint: true }), quiet);
    await expect(run).rejects.toThrow(/resume_from_checkpoint: true, but .*empty has no checkpoint-N folder/);
  });
});

describe('bad input', () => {
  it('empty dataset names the file', async () => {
    const file = join(dir, 'empty.jsonl');
    writeFileSync(file, '\n\n');
    await expect(runTraining({ ...config(join(dir, 'x')), trainFile: file }, quiet)).rejects.toThrow(`${file}: empty dataset`);
  });

  it('line that is not JSON names file:line', async () => {
    const file = join(dir, 'broken.jsonl');
    writeFileSync(file, '{"text": "one"}\n{"text": "two"}\n{text: three}\n');
    const error = await runTraining({ ...config(join(dir, 'x')), trainFile: file }, quiet).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FormatError);
    expect((error as Error).message).toMatch(new RegExp(`^${file}:3: invalid JSON`));
  });

  it('long sequences are truncated with one notice', async () => {
    const { tokenizer } = await loadModel(model);
    const file = join(dir, 'long.jsonl');
    const long = 'Once upon a time there was a little girl who liked to play in the park. '.repeat(4);
    writeFileSync(file, `${[long, long, 'Short.'].map((text) => JSON.stringify({ text })).join('\n')}\n`);
    const messages: string[] = [];
    const data = await loadTrainingData(file, tokenizer, { maxLength: 16, completionOnlyLoss: true, packing: false, logger: (m) => messages.push(m) });

    expect(data.truncated).toBe(2);
    expect(data.sequences.map((s) => s.inputIds.length)).toEqual([16, 16, data.sequences[2].inputIds.length]);
    expect(data.sequences[2].inputIds.length).toBeLessThan(16);
    const notices = messages.filter((m) => m.includes('more than max_length 16'));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toContain(file);
    expect(messages).toContain(`${file}: 2 of 3 examples truncated to max_length 16`);
  });

  describe('checkpoint of another config', () => {
    let checkpoint: string;

    beforeAll(async () => {
      const out = join(dir, 'for-mismatch');
      let steps = 0;
      const result = await runTraining(config(out, { max_steps: 3 }), { ...quiet, shouldStop: () => ++steps === 1 });
      checkpoint = result.savedTo;
    });

    async function resumeWith(loraRank: number, otherModel = false): Promise<unknown> {
      const loaded = await loadModel(model);
      const base = otherModel ? randomModel({ ...SMOLLM2_135M_CONFIG, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 16, vocabSize: 512 }) : loaded.model;
      const data = await loadTrainingData(trainFile, loaded.tokenizer, { maxLength: 64, completionOnlyLoss: true, packing: false });
      const lora = getPeftModel(base, { r: loraRank, loraAlpha: 8, targetModules: 'all-linear' });
      const trainer = new TemaTrainer({ model: base, lora, train: trainingBatches(data, loaded.tokenizer, 8, 0), args: { maxSteps: 3, outputDir: join(dir, 'x') }, progressLabel: null, writeMetrics: false });
      try {
        await resumeFromCheckpoint(trainer, checkpoint);
        return null;
      } catch (error) {
        return error;
      } finally {
        trainer.dispose();
        lora.unload();
        base.dispose();
        if (base !== loaded.model) loaded.model.dispose();
      }
    }

    it('other LoRA rank is rejected', async () => {
      const error = await resumeWith(8);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain('the checkpoint is for another model or LoRA config');
      expect((error as Error).message).toContain('"r":4');
    });

    it('other model is rejected', async () => {
      const error = await resumeWith(4, true);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain('the checkpoint is for another model or LoRA config');
      expect((error as Error).message).toContain('h64 l5');
    });

    it('same config resumes', async () => {
      expect(await resumeWith(4)).toBeNull();
    });
  });
});
