import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '@tematrainer/tensor';
import { LORA_DEFAULTS, loraConfig, type LoraConfig } from '@tematrainer/peft';
import { parseBitsAndBytesConfig, type ResolvedBitsAndBytesConfig } from '@tematrainer/quant';
import { TEMA_DEFAULTS, TRAINING_DEFAULTS, validateTema, validateTraining, type TemaArguments, type TrainingArguments } from './args.js';

/** A config file parsed and checked: everything `runTraining` needs. */
export interface TrainConfig {
  /** Hugging Face folder, GGUF file or llama2.c checkpoint of the base model. */
  modelNameOrPath: string;
  trainFile: string;
  evalFile: string | null;
  /** A checkpoint folder, true for the newest checkpoint-N in outputDir, or null to start fresh. */
  resumeFromCheckpoint: string | boolean | null;
  /** A previous stage's output folder whose adapter (and EMA, unless resetEma) this run starts from. */
  adapterNameOrPath: string | null;
  /** Start the EMA teacher from the loaded adapter instead of the previous stage's EMA. */
  resetEma: boolean;
  training: TrainingArguments;
  lora: LoraConfig;
  /** temaBeta is 0 when the config has no tema: section, which makes the run plain SFT. */
  tema: TemaArguments;
  /** transformers' BitsAndBytesConfig from the quantization_config: section; null keeps the base in f32. */
  quantization: ResolvedBitsAndBytesConfig | null;
}

/** The type a field accepts: `label` for type errors, `column` (shorter) for the help table. */
interface FieldType {
  label: string;
  column?: string;
  accepts(value: unknown): boolean;
}

const INTEGER: FieldType = { label: 'integer', accepts: (v) => Number.isInteger(v) };
const NUMBER: FieldType = { label: 'number', accepts: (v) => typeof v === 'number' && Number.isFinite(v) };
const BOOLEAN: FieldType = { label: 'boolean', accepts: (v) => typeof v === 'boolean' };
const STRING: FieldType = { label: 'string', accepts: (v) => typeof v === 'string' && v.length > 0 };
const STRING_OR_NULL: FieldType = { label: 'string or null', accepts: (v) => v === null || STRING.accepts(v) };
const oneOf = (...values: string[]): FieldType => ({
  label: values.map((v) => `"${v}"`).join(' | '),
  column: 'string',
  accepts: (v) => values.includes(v as string),
});
const TARGET_MODULES: FieldType = {
  label: 'list of names, regex or "all-linear"',
  column: 'list|string',
  accepts: (v) => typeof v === 'string' || (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === 'string')),
};
const INIT_LORA_WEIGHTS: FieldType = { label: 'true | false | "gaussian"', column: 'bool|string', accepts: (v) => typeof v === 'boolean' || v === 'gaussian' };
const RESUME: FieldType = { label: 'folder, true or null', column: 'string|bool', accepts: (v) => v === null || typeof v === 'boolean' || STRING.accepts(v) };

/** One config-file field: its snake_case name, type, default and one line of help. */
export interface ConfigField {
  name: string;
  type: FieldType;
  /** undefined marks a required field. */
  default: unknown;
  help: string;
}

type Section = 'run' | 'lora' | 'tema';

function trainingField(name: string, key: keyof TrainingArguments, type: FieldType, help: string): ConfigField & { key: string } {
  return { name, key, type, default: TRAINING_DEFAULTS[key], help };
}

function loraField(name: string, key: keyof LoraConfig, type: FieldType, help: string): ConfigField & { key: string } {
  return { name, key, type, default: LORA_DEFAULTS[key], help };
}

function temaField(name: string, key: keyof TemaArguments, type: FieldType, help: string): ConfigField & { key: string } {
  return { name, key, type, default: TEMA_DEFAULTS[key], help };
}

/**
 * Every field of a `tema train` config, by section, with its default and help. Names are trl's
 * SFTConfig names (top level), peft's LoraConfig names (lora:) and the TEMA names (tema:); the
 * defaults are the library's.
 */
export const CONFIG_FIELDS: Record<Section, (ConfigField & { key: string })[]> = {
  run: [
    { name: 'model_name_or_path', key: 'modelNameOrPath', type: STRING, default: undefined, help: 'base model: Hugging Face folder, .gguf file or llama2.c .bin (relative to the working directory)' },
    { name: 'train_file', key: 'trainFile', type: STRING, default: undefined, help: 'training data: .jsonl with text, prompt/completion or messages records, or .txt' },
    { name: 'eval_file', key: 'evalFile', type: STRING_OR_NULL, default: null, help: 'evaluation data in the same formats; null skips evaluation' },
    trainingField('output_dir', 'outputDir', STRING, 'folder for the adapter, checkpoint-N folders and metrics.jsonl'),
    trainingField('max_steps', 'maxSteps', INTEGER, 'optimizer steps to run; > 0 wins over num_train_epochs'),
    trainingField('num_train_epochs', 'numTrainEpochs', NUMBER, 'passes over train_file when max_steps <= 0'),
    trainingField('per_device_train_batch_size', 'perDeviceTrainBatchSize', INTEGER, 'sequences per micro-batch'),
    trainingField('per_device_eval_batch_size', 'perDeviceEvalBatchSize', INTEGER, 'sequences per evaluation batch'),
    trainingField('gradient_accumulation_steps', 'gradientAccumulationSteps', INTEGER, 'micro-batches per optimizer step'),
    trainingField('learning_rate', 'learningRate', NUMBER, 'peak AdamW learning rate'),
    trainingField('lr_scheduler_type', 'lrSchedulerType', oneOf('constant', 'constant_with_warmup', 'linear', 'cosine'), 'schedule after warm-up: constant, constant_with_warmup, linear or cosine'),
    trainingField('warmup_steps', 'warmupSteps', INTEGER, 'steps of linear warm-up from 0; > 0 wins over warmup_ratio'),
    trainingField('warmup_ratio', 'warmupRatio', NUMBER, 'warm-up as a fraction of all steps'),
    trainingField('weight_decay', 'weightDecay', NUMBER, 'AdamW decoupled weight decay'),
    trainingField('adam_beta1', 'adamBeta1', NUMBER, 'AdamW first-moment decay'),
    trainingField('adam_beta2', 'adamBeta2', NUMBER, 'AdamW second-moment decay'),
    trainingField('adam_epsilon', 'adamEpsilon', NUMBER, 'AdamW denominator epsilon'),
    trainingField('max_grad_norm', 'maxGradNorm', NUMBER, 'clip the global gradient norm to this; 0 disables clipping'),
    trainingField('max_length', 'maxLength', INTEGER, 'tokens per sequence; longer examples are truncated at the end'),
    trainingField('packing', 'packing', BOOLEAN, 'concatenate examples and cut the stream into max_length blocks'),
    trainingField('completion_only_loss', 'completionOnlyLoss', BOOLEAN, 'for prompt/completion data, learn only the completion tokens'),
    trainingField('seed', 'seed', INTEGER, 'seed of the LoRA init, data order and dropout'),
    trainingField('logging_steps', 'loggingSteps', INTEGER, 'log loss, learning rate and tokens/s every N steps'),
    trainingField('eval_steps', 'evalSteps', INTEGER, 'evaluate every N steps; 0 evaluates only at the end'),
    trainingField('save_steps', 'saveSteps', INTEGER, 'write output_dir/checkpoint-N every N steps; 0 disables'),
    { name: 'resume_from_checkpoint', key: 'resumeFromCheckpoint', type: RESUME, default: null, help: 'checkpoint folder to continue from; true takes the newest in output_dir' },
    { name: 'adapter_name_or_path', key: 'adapterNameOrPath', type: STRING_OR_NULL, default: null, help: "a previous stage's output_dir: start from its adapter and, for TEMA, its adapter_ema.safetensors" },
    { name: 'reset_ema', key: 'resetEma', type: BOOLEAN, default: false, help: "with adapter_name_or_path: start the EMA teacher from the loaded adapter, not the previous stage's EMA" },
  ],
  lora: [
    loraField('r', 'r', INTEGER, 'rank of the update B·A'),
    loraField('lora_alpha', 'loraAlpha', NUMBER, 'the update is scaled by lora_alpha / r'),
    loraField('lora_dropout', 'loraDropout', NUMBER, 'dropout on the adapter input while training, in [0, 1)'),
    loraField('target_modules', 'targetModules', TARGET_MODULES, 'linear layers that get an adapter (suffix match), a regex, or "all-linear"'),
    loraField('use_rslora', 'useRslora', BOOLEAN, 'scale by lora_alpha / sqrt(r) instead'),
    loraField('init_lora_weights', 'initLoraWeights', INIT_LORA_WEIGHTS, 'true: Kaiming-uniform A, zero B; "gaussian": normal A, zero B'),
    loraField('bias', 'bias', oneOf('none'), 'which biases train; only "none" (biases stay frozen)'),
  ],
  tema: [
    temaField('tema_alpha', 'temaAlpha', NUMBER, 'weight of the cross-entropy term'),
    temaField('tema_beta', 'temaBeta', NUMBER, 'weight of the divergence from the EMA teacher; 0 (or no tema: section) is plain SFT'),
    temaField('ema_decay', 'emaDecay', NUMBER, 'd in ema = d·ema + (1 - d)·param, in [0, 1)'),
    temaField('ema_warmup', 'emaWarmup', BOOLEAN, 'use min(d, (1 + k) / (10 + k)) for the k-th update'),
    temaField('kl_temperature', 'klTemperature', NUMBER, 'both distributions use softmax(logits / T); the divergence is scaled by T²'),
    temaField('kl_direction', 'klDirection', oneOf('forward', 'reverse', 'jsd'), 'forward: KL(teacher || student); reverse: KL(student || teacher); jsd: generalized JSD'),
    temaField('jsd_beta', 'jsdBeta', NUMBER, 'teacher weight of the mixture for kl_direction "jsd", in (0, 1)'),
  ],
};

const SECTION_PREFIX: Record<Section, string> = { run: '', lora: 'lora.', tema: 'tema.' };

/** Formats the field table for `tema train --help`: name, type, default and help of each field. */
export function formatConfigHelp(): string {
  const rows: string[][] = [];
  for (const section of ['run', 'lora', 'tema'] as const) {
    if (section !== 'run') rows.push([`${section}:`]);
    for (const f of CONFIG_FIELDS[section]) {
      const indent = section === 'run' ? '' : '  ';
      rows.push([indent + f.name, f.type.column ?? f.type.label, formatDefault(f.default), f.help]);
    }
  }
  // Checked by the quant package's own parser, so listed here for the reader only.
  rows.push(['quantization_config:']);
  rows.push(['  load_in_4bit', 'bool', 'false', 'replace the linear layers of the blocks by NF4 4-bit ones (QLoRA)']);
  rows.push(['  bnb_4bit_quant_type', 'string', 'nf4', 'only "nf4"']);
  rows.push(['  bnb_4bit_use_double_quant', 'bool', 'false', 'quantize the absmax values to 8 bits too']);
  rows.push(['  bnb_4bit_compute_dtype', 'string', 'float32', 'the kernels compute in float32 whatever is set']);
  const widths = [0, 1, 2].map((c) => Math.max(...rows.filter((r) => r.length > 1).map((r) => r[c].length)));
  return rows.map((r) => (r.length === 1 ? r[0] : r.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]) : cell)).join('  '))).join('\n');
}

function formatDefault(value: unknown): string {
  if (value === undefined) return 'required';
  if (typeof value === 'number' && value !== 0 && Math.abs(value) < 1e-3) return value.toExponential().replace('e-', 'e-');
  if (Array.isArray(value)) return value.join(',');
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Levenshtein distance, for suggesting the field a misspelt name meant. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/** "did you mean ...?" for an unknown name in `section`, looking in every section. */
function suggestion(name: string, section: Section): string {
  let best = '';
  let bestDistance = Infinity;
  for (const other of ['run', 'lora', 'tema'] as const) {
    for (const f of CONFIG_FIELDS[other]) {
      // A name that is right but in the wrong section is the likeliest mistake of all.
      const d = editDistance(name, f.name) + (other === section ? 0 : 0.5);
      if (d < bestDistance) {
        bestDistance = d;
        best = SECTION_PREFIX[other] + f.name;
      }
    }
  }
  return bestDistance <= Math.max(2, name.length / 3) ? ` (did you mean "${best}"?)` : '';
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list ${JSON.stringify(value)}`;
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** The names in `values` that `section` does not have, spelt as in the file ("lora.rank"), with suggestions. */
function unknownFields(values: Record<string, unknown>, section: Section): string[] {
  const known = new Set(CONFIG_FIELDS[section].map((f) => f.name));
  if (section === 'run') known.add('lora').add('tema').add('quantization_config');
  return Object.keys(values)
    .filter((k) => !known.has(k))
    .map((k) => `"${SECTION_PREFIX[section]}${k}"${suggestion(k, section)}`);
}

/** Check one section's types and required fields and return its values by camelCase key. */
function readSection(values: Record<string, unknown>, section: Section, where: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of CONFIG_FIELDS[section]) {
    const value = values[f.name];
    const name = SECTION_PREFIX[section] + f.name;
    if (value === undefined) {
      if (f.default === undefined) throw new ConfigError(`${where}: missing required field "${name}" (${f.help})`);
      continue;
    }
    if (!f.type.accepts(value)) {
      throw new ConfigError(`${where}: ${name}: expected ${f.type.label}, found ${describeValue(value)}`);
    }
    out[f.key] = value;
  }
  return out;
}

/** Run `check`, putting the config file's name in front of its ConfigError. */
function withFile<T>(where: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${where}: ${error.message}`);
    throw error;
  }
}

/**
 * Check a parsed config object and fill in the defaults. `where` (the file name) starts every
 * error: unknown fields (with the closest known name), values of the wrong type, missing
 * required fields and values out of range all raise a ConfigError.
 */
export function parseTrainConfig(raw: unknown, where = 'config'): TrainConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${where}: expected a mapping of field names to values, found ${describeValue(raw)}`);
  }
  const values = raw as Record<string, unknown>;
  for (const section of ['lora', 'tema'] as const) {
    const v = values[section];
    if (v !== undefined && v !== null && (typeof v !== 'object' || Array.isArray(v))) {
      throw new ConfigError(`${where}: ${section}: expected a mapping of ${section} fields, found ${describeValue(v)}`);
    }
  }

  const sections = {
    run: values,
    lora: (values.lora ?? {}) as Record<string, unknown>,
    tema: (values.tema ?? {}) as Record<string, unknown>,
  };
  const unknown = (['run', 'lora', 'tema'] as const).flatMap((section) => unknownFields(sections[section], section));
  if (unknown.length > 0) {
    throw new ConfigError(`${where}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; \`tema train --help\` lists every field`);
  }

  const run = readSection(sections.run, 'run', where);
  const loraValues = readSection(sections.lora, 'lora', where);
  const hasTema = values.tema !== undefined && values.tema !== null;
  const temaValues = readSection(sections.tema, 'tema', where);

  const { modelNameOrPath, trainFile, evalFile, resumeFromCheckpoint, adapterNameOrPath, resetEma, ...trainingValues } = run;
  const training: TrainingArguments = { ...TRAINING_DEFAULTS, ...(trainingValues as Partial<TrainingArguments>) };
  const tema: TemaArguments = { ...TEMA_DEFAULTS, ...(hasTema ? {} : { temaBeta: 0 }), ...(temaValues as Partial<TemaArguments>) };
  withFile(where, () => validateTraining(training));
  withFile(where, () => validateTema(tema));
  const lora = withFile(where, () => loraConfig(loraValues as Partial<LoraConfig>));

  const q = values.quantization_config;
  if (q !== undefined && q !== null && (typeof q !== 'object' || Array.isArray(q))) {
    throw new ConfigError(`${where}: quantization_config: expected a mapping of BitsAndBytesConfig fields, found ${describeValue(q)}`);
  }
  const quantization = q ? parseBitsAndBytesConfig(q as Record<string, unknown>, `${where}: quantization_config`) : null;

  return {
    quantization,
    modelNameOrPath: modelNameOrPath as string,
    trainFile: trainFile as string,
    evalFile: (evalFile as string | null | undefined) ?? null,
    resumeFromCheckpoint: (resumeFromCheckpoint as string | boolean | null | undefined) ?? null,
    adapterNameOrPath: (adapterNameOrPath as string | null | undefined) ?? null,
    resetEma: (resetEma as boolean | undefined) ?? false,
    training,
    lora,
    tema,
  };
}

/** Read a JSON (.json) or YAML (.yaml, .yml, anything else) config file and check it. */
export function loadTrainConfig(file: string): TrainConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError(`${file}: invalid ${extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message}`);
  }
  return parseTrainConfig(raw, file);
}
