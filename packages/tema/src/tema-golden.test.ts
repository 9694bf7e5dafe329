import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { openSafetensors, type SafetensorsFile } from '@tematrainer/io';
import { fixture, loadModel, type LoadedModel } from '@tematrainer/models';
import { getPeftModel, type LoraModel } from '@tematrainer/peft';
import { fromData, init, maxAbsDiff, untrack, type Tensor } from '@tematrainer/tensor';
import type { Batch } from './data/index.js';
import { TemaTrainer } from './tema-trainer.js';

/**
 * The golden TEMA step of ../shared/fixtures/golden: stories260K-hf with LoRA r=4, alpha=8 on
 * q_proj, v_proj and down_proj, fixed student and EMA weights, a batch of 2 x 16 tokens.
 * Tolerances are the ones the golden set suggests for a float32 reimplementation.
 */
const golden = JSON.parse(readFileSync(fixture('golden/tema_golden.json'), 'utf8'));
let st: SafetensorsFile;
let loaded: LoadedModel;
let batch: Batch;

const read = async (name: string) => (await st.read(name, { as: 'f32' })).data;

/** A data source that returns the golden batch forever. */
const source = () => ({ next: () => batch, state: { epoch: 0, position: 0, seed: 0 }, restore() {} });

async function setup(tema: ConstructorParameters<typeof TemaTrainer>[0]['tema']): Promise<{ lora: LoraModel; trainer: TemaTrainer }> {
  const lora = getPeftModel(loaded.model, { r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] });
  const params = lora.parameters();
  const ema: Tensor[] = [];
  for (let i = 0; i < lora.tensors.length; i++) {
    const name = lora.tensors[i].peftName;
    params[i].write(await read(name));
    ema.push(untrack(fromData(await read(`ema.${name}`), params[i].shape)));
  }
  const trainer = new TemaTrainer({
    model: loaded.model,
    lora,
    train: source(),
    args: { learningRate: 1e-3, lrSchedulerType: 'constant', maxGradNorm: 0, weightDecay: 0, maxSteps: 1, outputDir: '/tmp/unused' },
    tema: { emaDecay: 0.9, ...tema },
    emaState: ema,
    progressLabel: null,
    writeMetrics: false,
  });
  return { lora, trainer };
}

beforeAll(async () => {
  await init();
  loaded = await loadModel(fixture('stories260K-hf'));
  st = await openSafetensors(fixture('golden/tema_golden.safetensors'));
  const ids = (await st.read('input_ids', { as: 'i32' })).data;
  const labels = (await st.read('labels', { as: 'i32' })).data;
  batch = { inputIds: ids, labels, attentionMask: new Int32Array(32).fill(1), batchSize: 2, seqLen: 16 };
});

describe('TemaTrainer against the golden step', () => {
  const cases: [string, 'forward' | 'reverse' | 'jsd', number][] = [
    ['kl_forward_T1', 'forward', 1],
    ['kl_reverse_T1', 'reverse', 1],
    ['kl_jsd_T1', 'jsd', 1],
    ['kl_forward_T2', 'forward', 2],
    ['kl_reverse_T2', 'reverse', 2],
    ['kl_jsd_T2', 'jsd', 2],
  ];
  for (const [key, direction, temperature] of cases) {
    it(`CE and ${key}`, async () => {
      const { lora, trainer } = await setup({ klDirection: direction, klTemperature: temperature });
      const { ce, kl } = trainer.accumulateGradients([batch]);
      expect(Math.abs((await ce[0].item()) - golden.scalars.ce)).toBeLessThan(1e-5);
      expect(Math.abs((await kl[0].item()) - golden.scalars[key])).toBeLessThan(1e-5);
      trainer.optimizer.zeroGrad();
      trainer.dispose();
      lora.unload();
    });
  }

  it('total loss, gradients, one AdamW step and one EMA update', async () => {
    const { lora, trainer } = await setup({});
    const { ce, kl } = trainer.accumulateGradients([batch]);
    const total = (await ce[0].item()) + (await kl[0].item());
    expect(Math.abs(total - golden.scalars.total_loss)).toBeLessThan(1e-5);

    const params = lora.parameters();
    for (let i = 0; i < params.length; i++) {
      const name = lora.tensors[i].peftName;
      const { diff } = maxAbsDiff((await params[i].grad!.data()) as Float32Array, await read(`grad.${name}`));
      expect(diff, `grad of ${name}`).toBeLessThan(1e-5);
    }

    trainer.applyOptimizer();
    for (let i = 0; i < params.length; i++) {
      const name = lora.tensors[i].peftName;
      const after = (await params[i].data()) as Float32Array;
      const expected = await read(`step1.${name}`);
      expect(maxAbsDiff(after, expected).diff, `step1 of ${name}`).toBeLessThan(5e-6);
      const ema = (await trainer.ema[i].data()) as Float32Array;
      expect(maxAbsDiff(ema, await read(`ema_step1.${name}`)).diff, `ema_step1 of ${name}`).toBeLessThan(5e-7);
    }
    trainer.dispose();
    lora.unload();
  });

  it('teacher logits equal the golden teacher logits', async () => {
    const { lora, trainer } = await setup({});
    const ids = fromData(batch.inputIds, [2, 16], 'i32');
    const teacher = trainer.teacherLogits(ids, batch);
    const { diff } = maxAbsDiff((await teacher.data()) as Float32Array, await read('teacher_logits'));
    expect(diff).toBeLessThan(1e-4);
    teacher.dispose();
    ids.dispose();
    trainer.dispose();
    lora.unload();
  });
});
