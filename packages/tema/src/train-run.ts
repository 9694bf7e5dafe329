import { appendFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '@tematrainer/io';
import { loadModel } from '@tematrainer/models';
import { quantizeModel } from '@tematrainer/quant';
import { ADAPTER_WEIGHTS, getPeftModel, loadAdapterWeights, saveAdapter, type LoraModel } from '@tematrainer/peft';
import { ConfigError, init, type Tensor } from '@tematrainer/tensor';
import { EMA_PREFIX, EMA_WEIGHTS, resumeFromCheckpoint, TRAINER_STATE_FILE } from './checkpoint.js';
import { evaluationBatches, loadTrainingData, trainingBatches } from './dataset-source.js';
import type { EvalResult } from './sft-trainer.js';
import { TemaTrainer } from './tema-trainer.js';
import type { TrainConfig } from './train-config.js';

export interface RunOptions {
  /** Receives what a user acts on: data counts, notices, files written (default: stderr). */
  log?: (message: string) => void;
  /** Checked after every optimizer step; true saves a checkpoint and ends the run (Ctrl-C). */
  shouldStop?: () => boolean;
  /** Draw a progress bar on stderr (default true). */
  progress?: boolean;
}

export interface RunResult {
  /** Optimizer steps done, counting those of a resumed checkpoint. */
  globalStep: number;
  /** true when shouldStop ended the run before max_steps. */
  stopped: boolean;
  /** The checkpoint written on a stop, or the adapter folder (output_dir) at the end. */
  savedTo: string;
  /** The last evaluation, when there is eval data. */
  evaluation: EvalResult | null;
  /** The mean training loss of each logged window, oldest first. */
  losses: number[];
}

/** Find the checkpoint-N folder of `outputDir` with the largest N; null when there is none. */
export function latestCheckpoint(outputDir: string): string | null {
  if (!existsSync(outputDir)) return null;
  const steps = readdirSync(outputDir)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(outputDir, m[0], TRAINER_STATE_FILE)))
    .map((m) => Number(m[1]));
  return steps.length === 0 ? null : join(outputDir, `checkpoint-${Math.max(...steps)}`);
}

/** Write the EMA teacher as `dir/adapter_ema.safetensors`, with peft's names under "ema.". */
export async function saveEmaWeights(trainer: TemaTrainer, dir: string): Promise<void> {
  const record: Parameters<typeof writeSafetensors>[1] = {};
  for (let i = 0; i < trainer.ema.length; i++) {
    const t = trainer.ema[i];
    record[EMA_PREFIX + trainer.lora.tensors[i].peftName] = { dtype: 'F32', shape: [...t.shape], data: (await t.data()) as Float32Array };
  }
  await writeSafetensors(join(dir, EMA_WEIGHTS), record, { format: 'pt' });
}

/**
 * Run `tema train`: load the model and tokenizer, read and tokenize the data, inject LoRA, train
 * with TemaTrainer (tema_beta 0 is plain SFT and skips the teacher), evaluate every eval_steps and
 * at the end, and write the adapter (plus adapter_ema.safetensors when tema_beta > 0) and
 * metrics.jsonl to output_dir. A stop requested through `shouldStop` writes a checkpoint that
 * resume_from_checkpoint continues from.
 */
export async function runTraining(config: TrainConfig, options: RunOptions = {}): Promise<RunResult> {
  const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));
  const { training: args } = config;

  await init();
  const loaded = await loadModel(config.modelNameOrPath);
  const { model, tokenizer } = loaded;
  const c = model.config;
  log(`model ${config.modelNameOrPath}: ${c.architecture}, ${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize}`);
  if (config.quantization?.loadIn4bit) {
    const report = await quantizeModel(model, config.quantization);
    log(`4-bit base: ${report.quantized.length} linear layers in NF4, ${report.bytesBefore} -> ${report.bytesAfter} bytes`);
  }

  const dataOptions = { maxLength: args.maxLength, completionOnlyLoss: args.completionOnlyLoss, packing: args.packing, logger: log };
  const train = await loadTrainingData(config.trainFile, tokenizer, dataOptions);
  log(`train ${train.file}: ${train.records} ${train.format} records, ${train.sequences.length} sequences`);
  const evalData = config.evalFile ? await loadTrainingData(config.evalFile, tokenizer, dataOptions) : null;
  if (evalData) log(`eval ${evalData.file}: ${evalData.records} ${evalData.format} records`);

  const lora = getPeftModel(model, config.lora, { seed: args.seed });
  const plainSft = config.tema.temaBeta === 0;
  const emaState = config.adapterNameOrPath ? await startFromStage(lora, config.adapterNameOrPath, !plainSft && !config.resetEma, log) : undefined;
  let progressLabel: string | null = plainSft ? 'sft' : 'tema';
  if (options.progress === false) progressLabel = null;
  const trainer = new TemaTrainer({
    model,
    lora,
    args,
    tema: config.tema,
    emaState,
    train: trainingBatches(train, tokenizer, args.perDeviceTrainBatchSize, args.seed),
    eval: evalData ? evaluationBatches(evalData, tokenizer, args.perDeviceEvalBatchSize) : [],
    progressLabel,
  });

  try {
    const trainable = lora.parameters().reduce((n, p) => n + p.size, 0);
    log(`LoRA r=${config.lora.r} on ${lora.layers.size} layers: ${trainable} trainable parameters; ${plainSft ? 'plain SFT' : `TEMA (tema_beta ${config.tema.temaBeta})`}, ${trainer.totalSteps} steps`);

    if (config.resumeFromCheckpoint !== null && config.resumeFromCheckpoint !== false) {
      const dir = config.resumeFromCheckpoint === true ? latestCheckpoint(args.outputDir) : config.resumeFromCheckpoint;
      if (dir === null) throw new ConfigError(`resume_from_checkpoint: true, but ${args.outputDir} has no checkpoint-N folder to resume from`);
      await resumeFromCheckpoint(trainer, dir);
      log(`resumed from ${dir} at step ${trainer.globalStep}`);
    }

    await trainer.trainLoop({ shouldStop: options.shouldStop });
    const losses = trainer.history.flatMap((h) => ('loss' in h ? [h.loss] : []));

    if (trainer.globalStep < trainer.totalSteps) {
      const dir = await trainer.saveCheckpoint();
      log(`stopped at step ${trainer.globalStep}: saved ${dir}; set resume_from_checkpoint to continue`);
      return { globalStep: trainer.globalStep, stopped: true, savedTo: dir, evaluation: null, losses };
    }

    let evaluation: EvalResult | null = null;
    if (evalData) {
      // trainLoop has already evaluated when the last step is a multiple of eval_steps.
      const last = trainer.history.at(-1);
      const done = last && 'eval_loss' in last && last.step === trainer.globalStep ? (last as EvalResult) : null;
      evaluation = done ?? (await trainer.evaluate());
      if (!done) {
        trainer.history.push(evaluation);
        mkdirSync(args.outputDir, { recursive: true });
        appendFileSync(join(args.outputDir, 'metrics.jsonl'), `${JSON.stringify(evaluation)}\n`);
      }
      log(`eval at step ${evaluation.step}: loss ${evaluation.eval_loss.toFixed(4)}, perplexity ${evaluation.eval_perplexity.toFixed(2)}`);
    }

    await saveAdapter(lora, args.outputDir, { baseModelNameOrPath: config.modelNameOrPath });
    if (!plainSft) await saveEmaWeights(trainer, args.outputDir);
    log(`saved the adapter${plainSft ? '' : ' and its EMA teacher'} to ${args.outputDir}`);
    return { globalStep: trainer.globalStep, stopped: false, savedTo: args.outputDir, evaluation, losses };
  } finally {
    trainer.dispose();
    for (const t of trainer.ema) t.dispose();
    lora.unload();
    model.dispose();
  }
}

/**
 * Put a previous stage's adapter values into `lora` and return its EMA as the new teacher when
 * asked and present (else undefined: the teacher starts from the loaded adapter).
 */
async function startFromStage(lora: LoraModel, dir: string, carryEma: boolean, log: (message: string) => void): Promise<Tensor[] | undefined> {
  await loadAdapterWeights(lora, join(dir, ADAPTER_WEIGHTS));
  const emaFile = join(dir, EMA_WEIGHTS);
  if (!carryEma || !existsSync(emaFile)) {
    log(`started from the adapter in ${dir}; the EMA teacher starts from it too`);
    return undefined;
  }
  const ema = lora.cloneParameters();
  {
    // Load the EMA file into the copies by pointing the layers at them for the read.
    using _ema = lora.swapIn(ema);
    await loadAdapterWeights(lora, emaFile, EMA_PREFIX);
  }
  log(`started from the adapter and the EMA teacher in ${dir}`);
  return ema;
}
