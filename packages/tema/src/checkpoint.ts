import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readTrainerState, writeSafetensors, writeTrainerState } from '@tematrainer/io';
import { loadAdapterWeights, saveAdapter } from '@tematrainer/peft';
import { ConfigError, FormatError } from '@tematrainer/tensor';
import type { SftTrainer } from './sft-trainer.js';

export const TRAINER_STATE_FILE = 'trainer_state.msgpack';
/** The EMA teacher beside the adapter: peft's tensor names under an "ema." prefix. */
export const EMA_WEIGHTS = 'adapter_ema.safetensors';
export const EMA_PREFIX = 'ema.';

/** What must match for a checkpoint to be resumed by a trainer. */
function fingerprint(trainer: SftTrainer): Record<string, unknown> {
  const c = trainer.model.config;
  return {
    model: `${c.architecture} h${c.hiddenSize} l${c.numHiddenLayers} heads${c.numAttentionHeads}/${c.numKeyValueHeads} v${c.vocabSize}`,
    lora: { r: trainer.lora.config.r, lora_alpha: trainer.lora.config.loraAlpha, targets: trainer.lora.tensors.map((t) => t.peftName) },
  };
}

/**
 * Write `dir` as a complete checkpoint: the adapter in peft's format, the EMA (TEMA) beside it,
 * and trainer_state.msgpack (step, data position, optimizer moments, EMA, dropout counters,
 * settings). Everything goes to `<dir>.tmp` first and is renamed at the end, so an interrupted
 * save never leaves a checkpoint that looks complete.
 */
export async function saveCheckpoint(trainer: SftTrainer, dir: string): Promise<string> {
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  await saveAdapter(trainer.lora, tmp);
  const extra = await trainer.extraState();
  const ema = extra.ema as Float32Array[] | undefined;
  if (ema) {
    const params = trainer.lora.parameters();
    const record = Object.fromEntries(
      trainer.lora.tensors.map((t, i) => [EMA_PREFIX + t.peftName, { dtype: 'F32' as const, shape: [...params[i].shape], data: ema[i] }]),
    );
    await writeSafetensors(join(tmp, EMA_WEIGHTS), record, { format: 'pt' });
  }
  const optimizer = await trainer.optimizer.state();
  await writeTrainerState(join(tmp, TRAINER_STATE_FILE), {
    global_step: trainer.globalStep,
    data_state: { ...trainer.train.state },
    optimizer: { step: optimizer.step, exp_avg: optimizer.exp_avg, exp_avg_sq: optimizer.exp_avg_sq },
    dropout_offsets: [...trainer.lora.layers.values()].map((l) => l.dropoutOffset),
    args: trainer.args,
    fingerprint: fingerprint(trainer),
    log_history: trainer.history,
    ...extra,
  });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}

function tensorData(value: unknown): Float32Array {
  if (value instanceof Float32Array) return value;
  const data = (value as { data?: unknown })?.data;
  if (data instanceof Float32Array) return data;
  throw new FormatError('trainer state: expected an F32 tensor');
}

/**
 * Restore a trainer from a checkpoint written by `saveCheckpoint`: adapter values, optimizer
 * moments, data position, EMA and step. The model and LoRA layout must match the ones that
 * wrote it.
 */
export async function resumeFromCheckpoint(trainer: SftTrainer, dir: string): Promise<void> {
  const file = join(dir, TRAINER_STATE_FILE);
  if (!existsSync(file)) throw new FormatError(`${dir}: no ${TRAINER_STATE_FILE}, so this is not a checkpoint`);
  const state = await readTrainerState(file);
  const expected = JSON.stringify(fingerprint(trainer));
  const found = JSON.stringify(state.fingerprint);
  if (expected !== found) {
    throw new ConfigError(`${file}: the checkpoint is for another model or LoRA config (checkpoint: ${found}; this run: ${expected})`);
  }
  await loadAdapterWeights(trainer.lora, join(dir, 'adapter_model.safetensors'));
  const opt = state.optimizer as { step: number; exp_avg: unknown[]; exp_avg_sq: unknown[] };
  trainer.optimizer.loadState({
    step: Number(opt.step),
    exp_avg: opt.exp_avg.map(tensorData),
    exp_avg_sq: opt.exp_avg_sq.map(tensorData),
  });
  trainer.train.restore(state.data_state as never);
  const offsets = state.dropout_offsets as number[];
  [...trainer.lora.layers.values()].forEach((l, i) => (l.dropoutOffset = Number(offsets[i] ?? 0)));
  trainer.globalStep = Number(state.global_step);
  if (state.ema) {
    trainer.loadExtraState({ ...state, ema: (state.ema as unknown[]).map((e) => ({ data: tensorData(e) })) }, file);
  }
  trainer.history.push(...((state.log_history as never[]) ?? []));
}
