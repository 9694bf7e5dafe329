// GPU bytes of the base weights and the cost of training on them. The model is SmolLM2-135M-shaped
// with random weights (hidden 576, 30 layers, 9/3 heads, intermediate 1536, vocab 49152, tied
// embeddings), as an f32 base, an NF4 base and an NF4 base with double quantization. Figures:
//   - bytes of the base weights on the GPU, with f16 computed (half of f32) for comparison;
//   - step time and peak GPU bytes of one SFT step (tema_beta 0) and one TEMA step (tema_beta 1),
//     LoRA r 8 on all 7 projections, batch 1 x 64.
// One untimed step per base first compiles the pipelines and allocates the optimizer state. Peak
// bytes are the pool's peak during the timed step, base weights included. Prints one line per
// figure, then one JSON line. Never fails on time.
//   npx bun bench/quant.ts
import { randomModel, SMOLLM2_135M_CONFIG, type LlamaModel } from '@tematrainer/models';
import { getPeftModel } from '@tematrainer/peft';
import { disposeQuantizedLayers, Nf4Linear, quantizeModel } from '@tematrainer/quant';
import { engine, init } from '@tematrainer/tensor';
import { TemaTrainer, type Batch } from '@tematrainer/tema';

const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const SEQ_LEN = 64;

type Base = 'f32' | 'nf4' | 'nf4_double_quant';

interface StepFigures {
  step_ms: number;
  peak_bytes: number;
}

/** Bytes of every base weight on the GPU: full-precision params plus the quantized layers. */
function baseBytes(model: LlamaModel): number {
  let bytes = model.parameterBytes;
  for (const layer of model.linears.values()) {
    if (layer instanceof Nf4Linear) bytes += layer.byteLength;
  }
  return bytes;
}

/** Time one training step of one kind after one untimed step. */
async function measureStep(model: LlamaModel, batch: Batch, temaBeta: number): Promise<StepFigures> {
  const pool = engine().pool;
  const lora = getPeftModel(model, { r: 8, loraAlpha: 16, targetModules: PROJECTIONS });
  const source = { next: () => batch, state: { epoch: 0, position: 0, seed: 0 }, restore() {} };
  const trainer = new TemaTrainer({
    model,
    lora,
    train: source,
    args: { maxSteps: 2, learningRate: 1e-4, outputDir: 'runs/bench' },
    tema: { temaBeta },
    progressLabel: null,
    writeMetrics: false,
  });

  trainer.trainStep();
  await trainer.flushMetrics();
  pool.resetPeak();
  const start = performance.now();
  trainer.trainStep();
  // Reading the loss back waits for the GPU to finish the step.
  await trainer.flushMetrics();
  const stepMs = performance.now() - start;
  const peak = pool.peakBytes;

  trainer.dispose();
  for (const t of trainer.ema) t.dispose();
  lora.unload();
  return { step_ms: stepMs, peak_bytes: peak };
}

const { info } = await init();
const adapter = info.adapterInfo.description || `${info.adapterInfo.vendor} ${info.adapterInfo.architecture}`;
console.log(`adapter: ${adapter} (${info.runtime})`);

const config = SMOLLM2_135M_CONFIG;
const ids = Int32Array.from({ length: SEQ_LEN }, (_, i) => (i * 7919 + 13) % config.vocabSize);
const batch: Batch = { inputIds: ids, labels: ids.slice(), attentionMask: new Int32Array(SEQ_LEN).fill(1), batchSize: 1, seqLen: SEQ_LEN };
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

const results: Record<string, unknown> = {};
for (const base of ['f32', 'nf4', 'nf4_double_quant'] as Base[]) {
  const model = randomModel(config, 0) as LlamaModel;
  const f32Bytes = baseBytes(model);
  if (base !== 'f32') await quantizeModel(model, { loadIn4bit: true, bnb4bitUseDoubleQuant: base === 'nf4_double_quant' });
  await engine().sync();
  const bytes = baseBytes(model);
  if (base === 'f32') {
    console.log(`base weights f32: ${mib(f32Bytes)}; f16 (computed, half of f32): ${mib(f32Bytes / 2)}`);
    results.f16 = { base_bytes: f32Bytes / 2 };
  } else {
    console.log(`base weights ${base}: ${mib(bytes)} (embeddings stay f32: ${mib(model.parameterBytes)})`);
  }

  const sft = await measureStep(model, batch, 0);
  console.log(`${base} SFT step 1x${SEQ_LEN}: ${sft.step_ms.toFixed(0)} ms, peak ${mib(sft.peak_bytes)}`);
  const tema = await measureStep(model, batch, 1);
  console.log(`${base} TEMA step 1x${SEQ_LEN}: ${tema.step_ms.toFixed(0)} ms, peak ${mib(tema.peak_bytes)}`);
  results[base] = { base_bytes: bytes, sft, tema };
  model.dispose();
  disposeQuantizedLayers(model);
}

console.log(JSON.stringify({ bench: 'quant', adapter, runtime: info.runtime, model: 'SmolLM2-135M-shaped (random)', batch: `1x${SEQ_LEN}`, ...results }));
process.exit(0);
