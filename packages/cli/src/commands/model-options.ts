import { parseArgs } from 'node:util';
import { loadModel, type LoadedModel } from '@tematrainer/models';
import { loadAdapter, type LoraModel } from '@tematrainer/peft';
import { init } from '@tematrainer/tensor';
import { UsageError } from '../cli.js';

/** Options every command that runs a model takes. */
export const MODEL_OPTIONS = {
  model: { type: 'string' },
  adapter: { type: 'string' },
  tokenizer: { type: 'string' },
} as const;

export const MODEL_USAGE = '--model PATH [--adapter DIR] [--tokenizer TOK_BIN]';

/** Parse `args` (string-valued options only) with node:util's parseArgs; unknown or malformed options are usage errors. */
export function parseOptions<K extends string>(command: string, args: string[], options: Record<K, { type: 'string' }>): Partial<Record<K, string>> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Partial<Record<K, string>>;
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message}`);
  }
}

/** Parse a numeric option: an integer (and at least `min`) when `integer` is set. */
export function numberOption(name: string, value: string | undefined, { integer = false, min = -Infinity } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min) {
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'}${min > -Infinity ? ` >= ${min}` : ''}, got "${value}"`);
  }
  return n;
}

/** Open the device, load --model (and --adapter into it when given). */
export async function loadModelOptions(
  command: string,
  values: { model?: string; adapter?: string; tokenizer?: string },
): Promise<{ loaded: LoadedModel; lora: LoraModel | null }> {
  if (!values.model) throw new UsageError(`${command} needs --model PATH (a Hugging Face folder, a .gguf file or a llama2.c .bin file)`);
  await init();
  const loaded = await loadModel(values.model, { tokenizerPath: values.tokenizer });
  try {
    const lora = values.adapter ? await loadAdapter(loaded.model, values.adapter) : null;
    return { loaded, lora };
  } catch (error) {
    loaded.model.dispose();
    throw error;
  }
}
