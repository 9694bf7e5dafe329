import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic, writeSafetensors } from '@tematrainer/io';
import { loadModel, type LoadedModel } from '@tematrainer/models';
import { getPeftModel, saveAdapter, type LoraModel } from '@tematrainer/peft';
import { quantizeModel } from '@tematrainer/quant';
import { ConfigError, engine, log, type Tensor } from '@tematrainer/tensor';
import { ensureAssets } from '../assets/index.js';
import { EMA_PREFIX, EMA_WEIGHTS, resumeFromCheckpoint } from '../checkpoint.js';
import { ChunkSampler, chunkBatch, loadCorpus, type Batch, type CorpusSplit } from '../data/index.js';
import { evaluateModel } from '../evaluate.js';
import { TemaTrainer } from '../tema-trainer.js';
import type { ContinualOptions, MethodSpec } from './options.js';
import { summarize, type MethodResult, type Summary } from './metrics.js';
import { renderReport } from './report.js';

export interface Domain {
  name: string;
  path: string;
  split: CorpusSplit;
  evalBatches: Batch[];
}

export interface ContinualResult {
  results: MethodResult[];
  summaries: Summary[];
  outDir: string;
  /** Seconds the whole run took. */
  seconds: number;
  /** True when the run stopped early on request (Ctrl-C) and saved a checkpoint to resume from. */
  interrupted: boolean;
  /** The base weights: "f32" or the 4-bit form. */
  base: string;
  model: LoadedModel;
  domains: Domain[];
}

/** Resume bookkeeping written next to the checkpoint of an interrupted run. */
interface ProgressState {
  options: ContinualOptions;
  finished: MethodResult[];
  current: MethodResult | null;
  methodIndex: number;
  /** Stage (0-based) that was running; its trainer checkpoint is in resume/checkpoint. */
  stageIndex: number;
}

const DEFAULT_MODEL_ASSETS = ['stories260K'];
const DEFAULT_MODEL_FILE = 'stories260K/stories260K.bin';

/** Split eval chunks into batches of at most `batchSize`. */
function batchesOf(chunks: Int32Array[], batchSize: number): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < chunks.length; i += batchSize) out.push(chunkBatch(chunks.slice(i, i + batchSize)));
  return out;
}

async function resolveInputs(o: ContinualOptions): Promise<{ modelPath: string; base: [string, string]; domains: [string, string][] }> {
  const needed = new Set<string>();
  if (!o.model) DEFAULT_MODEL_ASSETS.forEach((n) => needed.add(n));
  if (!o.baseDomain) needed.add('tinystories_train_head');
  for (const [name, path] of o.domains) if (!path) needed.add(name);
  let paths: Record<string, string> = {};
  if (needed.size) {
    log(`assets: ${[...needed].join(', ')} into ${resolve(o.assetsDir)}${process.env.TEMA_ASSETS_MIRROR ? ` from the mirror ${process.env.TEMA_ASSETS_MIRROR}` : ''}`);
    paths = await ensureAssets({ dir: o.assetsDir, names: [...needed] });
  }
  return {
    modelPath: o.model ?? join(resolve(o.assetsDir), DEFAULT_MODEL_FILE),
    base: o.baseDomain ? [basename(o.baseDomain).replace(/\.[^.]+$/, ''), o.baseDomain] : ['tinystories', paths.tinystories_train_head],
    domains: o.domains.map(([name, path]) => [name, path ?? paths[name]]),
  };
}

/** Perplexity of the current model on every domain's held-out chunks. */
async function evaluateAll(model: LoadedModel['model'], domains: Domain[]): Promise<number[]> {
  const out: number[] = [];
  for (const d of domains) out.push((await evaluateModel(model, d.evalBatches)).perplexity);
  return out;
}

async function saveEma(lora: LoraModel, ema: Tensor[], dir: string): Promise<void> {
  const record: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (let i = 0; i < ema.length; i++) {
    record[EMA_PREFIX + lora.tensors[i].peftName] = { dtype: 'F32', shape: [...ema[i].shape], data: (await ema[i].data()) as Float32Array };
  }
  await writeSafetensors(join(dir, EMA_WEIGHTS), record, { format: 'pt' });
}

/**
 * Fine-tune one model on the domains in turn with each method (same seed, data order and
 * held-out split for all), measuring every domain's perplexity before training and after each
 * stage. The adapter and the EMA carry over from stage to stage. `shouldStop` is polled after
 * each step; a stop writes a checkpoint into `<outDir>/resume` that `resume: true` continues.
 */
export async function runContinual(
  o: ContinualOptions,
  hooks: { shouldStop?: () => boolean; onStage?: (method: string, stage: number, perplexity: number[]) => void } = {},
): Promise<ContinualResult> {
  const started = performance.now();
  const outDir = resolve(o.outDir);
  const resumeDir = join(outDir, 'resume');
  let progress: ProgressState | null = null;
  if (o.resume) {
    const file = join(resumeDir, 'progress.json');
    if (!existsSync(file)) throw new ConfigError(`--resume: no interrupted run in ${outDir} (${file} not found)`);
    progress = JSON.parse(readFileSync(file, 'utf8')) as ProgressState;
    log('--resume continues with the settings the interrupted run was started with; other options given now are ignored');
    o = { ...progress.options, resume: true };
    log(`resuming ${progress.options.methods[progress.methodIndex].name}, stage ${progress.stageIndex + 1}, from ${resumeDir}`);
  }
  mkdirSync(outDir, { recursive: true });
  if (!o.resume && existsSync(join(resumeDir, 'progress.json'))) {
    log(`${outDir} holds an interrupted run; starting over replaces it (run with --resume to continue it instead)`);
  }

  const inputs = await resolveInputs(o);
  const loaded = await loadModel(inputs.modelPath);
  const { model, tokenizer } = loaded;
  log(`model: ${inputs.modelPath} (${loaded.format}, ${(model.parameterBytes / 4).toLocaleString('en-US')} parameters)`);
  let base = 'f32';
  if (o.loadIn4bit) {
    const report = await quantizeModel(model, { loadIn4bit: true, bnb4bitUseDoubleQuant: o.doubleQuant });
    base = o.doubleQuant ? 'NF4 4-bit, double quantization' : 'NF4 4-bit';
    log(`base: ${report.quantized.length} linear layers quantized to ${base} (${report.bytesBefore.toLocaleString('en-US')} -> ${report.bytesAfter.toLocaleString('en-US')} bytes)`);
  }

  const domains: Domain[] = [];
  for (const [name, path] of [inputs.base, ...inputs.domains]) {
    const split = await loadCorpus(path, tokenizer, { chunkLength: o.chunkLength, maxEvalChunks: o.evalChunks });
    domains.push({ name, path, split, evalBatches: batchesOf(split.eval, o.batchSize) });
    log(`domain ${name}: ${split.train.length} training chunks, ${split.eval.length} held-out chunks of ${o.chunkLength} tokens (${path})`);
  }
  const names = domains.map((d) => d.name);

  // The adapter starts with B = 0, so the model before training is the base model for every method.
  const before = progress?.finished[0]?.perplexity[0] ?? progress?.current?.perplexity[0] ?? (await evaluateAll(model, domains));
  hooks.onStage?.('base', 0, before);

  const results: MethodResult[] = progress ? [...progress.finished] : [];
  let interrupted = false;
  const metricsFile = join(outDir, 'metrics.jsonl');
  if (!progress) rmSync(metricsFile, { force: true });

  for (let m = progress?.methodIndex ?? 0; m < o.methods.length && !interrupted; m++) {
    const method: MethodSpec = o.methods[m];
    const resuming = progress && m === progress.methodIndex ? progress : null;
    const result: MethodResult = resuming?.current ?? {
      method: method.name,
      domains: names,
      perplexity: [before],
      losses: [],
      stepSeconds: 0,
      tokensPerSecond: 0,
      peakBytes: 0,
      trainSeconds: 0,
    };
    const lora = getPeftModel(
      model,
      { r: o.loraR, loraAlpha: o.loraAlpha, loraDropout: o.loraDropout, targetModules: o.loraTargets.length === 1 && o.loraTargets[0] === 'all-linear' ? 'all-linear' : o.loraTargets },
      { seed: o.seed },
    );
    let ema: Tensor[] | undefined;
    const startStage = resuming?.stageIndex ?? 0;
    try {
      for (let s = startStage; s < domains.length - 1; s++) {
        const domain = domains[s + 1];
        const trainer = new TemaTrainer({
          model,
          lora,
          train: new ChunkSampler(domain.split.train, o.batchSize, o.seed * 1000 + s),
          args: {
            outputDir: join(outDir, method.name),
            maxSteps: o.stepsPerStage,
            perDeviceTrainBatchSize: o.batchSize,
            learningRate: o.learningRate,
            lrSchedulerType: 'linear',
            warmupSteps: o.warmupSteps,
            maxGradNorm: o.maxGradNorm,
            seed: o.seed,
            loggingSteps: Math.max(1, Math.min(10, Math.floor(o.stepsPerStage / 10))),
          },
          tema: {
            temaAlpha: method.temaAlpha,
            temaBeta: method.temaBeta,
            emaDecay: method.emaDecay,
            emaWarmup: o.emaWarmup,
            klTemperature: o.klTemperature,
            klDirection: o.klDirection,
          },
          emaState: o.carryEma ? ema : undefined,
          progressLabel: `${method.name} ${s + 1}/${domains.length - 1} ${domain.name}`,
          writeMetrics: false,
          callbacks: {
            onLog: (rec) => {
              result.losses.push({ stage: s + 1, step: s * o.stepsPerStage + rec.step, loss: rec.loss, ce: rec.ce, ...(rec.kl !== undefined ? { kl: rec.kl } : {}) });
              writeFileSync(metricsFile, `${JSON.stringify({ method: method.name, stage: s + 1, domain: domain.name, ...rec })}\n`, { flag: 'a' });
            },
          },
        });
        if (resuming && s === startStage) {
          await resumeFromCheckpoint(trainer, join(resumeDir, 'checkpoint'));
          log(`resumed at step ${trainer.globalStep} of stage ${s + 1}`);
        }
        if (ema && !o.carryEma) trainer.resetEma();
        const t0 = performance.now();
        await trainer.trainLoop({ shouldStop: hooks.shouldStop });
        await engine().sync();
        const seconds = (performance.now() - t0) / 1000;
        result.trainSeconds += seconds;
        result.peakBytes = Math.max(result.peakBytes, trainer.peakBytes);

        if (trainer.globalStep < o.stepsPerStage) {
          // Interrupted: keep everything needed to continue this stage.
          rmSync(resumeDir, { recursive: true, force: true });
          mkdirSync(resumeDir, { recursive: true });
          await trainer.saveCheckpoint(join(resumeDir, 'checkpoint'));
          const state: ProgressState = { options: o, finished: results, current: result, methodIndex: m, stageIndex: s };
          await writeFileAtomic(join(resumeDir, 'progress.json'), new TextEncoder().encode(JSON.stringify(state)));
          log(`interrupted: checkpoint saved to ${resumeDir}; run again with --resume to continue`);
          interrupted = true;
          trainer.dispose();
          break;
        }
        ema = trainer.takeEma();
        trainer.dispose();
        const row = await evaluateAll(model, domains);
        result.perplexity.push(row);
        hooks.onStage?.(method.name, s + 1, row);
      }
      if (!interrupted) {
        result.stepSeconds = result.trainSeconds / Math.max(1, (domains.length - 1) * o.stepsPerStage);
        result.tokensPerSecond = (o.batchSize * o.chunkLength) / Math.max(1e-9, result.stepSeconds);
        const dir = join(outDir, method.name);
        await saveAdapter(lora, dir, { baseModelNameOrPath: inputs.modelPath });
        if (ema && method.temaBeta > 0) await saveEma(lora, ema, dir);
        results.push(result);
      }
    } finally {
      for (const t of ema ?? []) t.dispose();
      lora.unload();
    }
  }

  const summaries = results.map(summarize);
  if (!interrupted) {
    rmSync(resumeDir, { recursive: true, force: true });
    const settings = { ...o, base, model: inputs.modelPath, domains: domains.map((d) => [d.name, d.path]), adapter: engine().info.adapterInfo.description, runtime: engine().info.runtime };
    const html = renderReport('TEMA against SFT: continual fine-tuning', results, summaries, settings);
    await writeFileAtomic(join(outDir, 'report.html'), new TextEncoder().encode(html));
    await writeFileAtomic(join(outDir, 'results.json'), new TextEncoder().encode(JSON.stringify({ settings, results, summaries }, null, 2)));
  }
  return { results, summaries, outDir, seconds: (performance.now() - started) / 1000, interrupted, base, model: loaded, domains };
}
