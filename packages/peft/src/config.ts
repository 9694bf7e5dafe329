import { ConfigError } from '@tematrainer/tensor';

/**
 * LoRA settings with peft's LoraConfig names and defaults (camelCase here; the snake_case
 * spelling is used in adapter_config.json).
 */
export interface LoraConfig {
  /** Rank of the update B·A. */
  r: number;
  /** Scale numerator: the update is multiplied by loraAlpha / r (or loraAlpha / sqrt(r) with rsLoRA). */
  loraAlpha: number;
  /** Dropout probability on the adapter's input, in training only. */
  loraDropout: number;
  /**
   * Which linear layers get an adapter: a list of names matched exactly or as a dotted suffix
   * ("q_proj" matches "model.layers.0.self_attn.q_proj"), a regular expression string matched
   * against the whole module name, or "all-linear" (every linear layer but the output head).
   */
  targetModules: string[] | string;
  /** Only "none" is supported: biases stay frozen. */
  bias: 'none';
  /** Rank-stabilised LoRA: scale by loraAlpha / sqrt(r). */
  useRslora: boolean;
  /** true: A Kaiming-uniform, B zero (the update starts at 0); "gaussian": A ~ N(0, 1/r), B zero; false: both random. */
  initLoraWeights: boolean | 'gaussian';
  /** The base layer stores its weight as (fan_in, fan_out), as GPT-2's Conv1D does. */
  fanInFanOut: boolean;
  /** Other modules trained in full and saved with the adapter (not supported yet; must be empty). */
  modulesToSave: string[] | null;
  taskType: 'CAUSAL_LM';
  baseModelNameOrPath: string | null;
}

/** peft's defaults (peft 0.21 LoraConfig), except targetModules, which peft derives per model type. */
export const LORA_DEFAULTS: LoraConfig = {
  r: 8,
  loraAlpha: 8,
  loraDropout: 0,
  targetModules: ['q_proj', 'v_proj'],
  bias: 'none',
  useRslora: false,
  initLoraWeights: true,
  fanInFanOut: false,
  modulesToSave: null,
  taskType: 'CAUSAL_LM',
  baseModelNameOrPath: null,
};

/** Fill defaults and check every field, with one message per invalid field. */
export function loraConfig(partial: Partial<LoraConfig> = {}): LoraConfig {
  const c: LoraConfig = { ...LORA_DEFAULTS, ...partial };
  const problems: string[] = [];
  if (!Number.isInteger(c.r) || c.r <= 0) problems.push(`r must be a positive integer, got ${c.r}`);
  if (!(typeof c.loraAlpha === 'number' && Number.isFinite(c.loraAlpha))) problems.push(`lora_alpha must be a number, got ${c.loraAlpha}`);
  if (!(c.loraDropout >= 0 && c.loraDropout < 1)) problems.push(`lora_dropout must be in [0, 1), got ${c.loraDropout}`);
  if (!(typeof c.targetModules === 'string' || (Array.isArray(c.targetModules) && c.targetModules.every((t) => typeof t === 'string')))) {
    problems.push(`target_modules must be a list of names, a regular expression or "all-linear", got ${JSON.stringify(c.targetModules)}`);
  }
  if (c.bias !== 'none') problems.push(`bias "${c.bias}" is not supported; only "none"`);
  if (!(c.initLoraWeights === true || c.initLoraWeights === false || c.initLoraWeights === 'gaussian')) {
    problems.push(`init_lora_weights must be true, false or "gaussian", got ${JSON.stringify(c.initLoraWeights)}`);
  }
  if (c.modulesToSave && c.modulesToSave.length > 0) problems.push('modules_to_save is not supported yet; leave it empty');
  if (c.taskType !== 'CAUSAL_LM') problems.push(`task_type "${c.taskType}" is not supported; only "CAUSAL_LM"`);
  if (problems.length) throw new ConfigError(`invalid LoRA config: ${problems.join('; ')}`);
  return c;
}

export function loraScaling(c: LoraConfig): number {
  return c.useRslora ? c.loraAlpha / Math.sqrt(c.r) : c.loraAlpha / c.r;
}

/** adapter_config.json as peft writes it. */
export function toAdapterConfigJson(c: LoraConfig): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: c.baseModelNameOrPath,
    bias: c.bias,
    fan_in_fan_out: c.fanInFanOut,
    inference_mode: true,
    init_lora_weights: c.initLoraWeights,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: c.loraAlpha,
    lora_bias: false,
    lora_dropout: c.loraDropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: c.modulesToSave,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: c.targetModules,
    task_type: c.taskType,
    use_dora: false,
    use_rslora: c.useRslora,
  };
}

/** Read adapter_config.json as peft writes it; `file` names it in errors. */
export function fromAdapterConfigJson(json: Record<string, unknown>, file: string): LoraConfig {
  if (json.peft_type !== 'LORA') throw new ConfigError(`${file}: peft_type "${String(json.peft_type)}" is not supported; only "LORA"`);
  if (json.task_type !== undefined && json.task_type !== null && json.task_type !== 'CAUSAL_LM') {
    throw new ConfigError(`${file}: task_type "${String(json.task_type)}" is not supported; only "CAUSAL_LM"`);
  }
  for (const key of ['use_dora', 'lora_bias']) {
    if (json[key] === true) throw new ConfigError(`${file}: ${key} = true is not supported`);
  }
  for (const key of ['rank_pattern', 'alpha_pattern']) {
    const v = json[key];
    if (v && typeof v === 'object' && Object.keys(v).length > 0) throw new ConfigError(`${file}: a non-empty ${key} is not supported`);
  }
  try {
    return loraConfig({
      r: json.r as number,
      loraAlpha: json.lora_alpha as number,
      loraDropout: (json.lora_dropout as number) ?? 0,
      targetModules: json.target_modules as string[] | string,
      bias: (json.bias as 'none') ?? 'none',
      useRslora: json.use_rslora === true,
      initLoraWeights: (json.init_lora_weights as boolean | 'gaussian') ?? true,
      fanInFanOut: json.fan_in_fan_out === true,
      modulesToSave: (json.modules_to_save as string[] | null) ?? null,
      taskType: 'CAUSAL_LM',
      baseModelNameOrPath: (json.base_model_name_or_path as string | null) ?? null,
    });
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${file}: ${e.message}`);
    throw e;
  }
}

/**
 * Whether a module gets an adapter, as peft decides: a string is a regular expression matched
 * against the whole name; a list matches a name exactly or as a dotted suffix.
 */
export function matchesTarget(name: string, targets: string[] | string, outputHead: string): boolean {
  if (targets === 'all-linear') return name !== outputHead;
  if (typeof targets === 'string') return new RegExp(`^(?:${targets})$`).test(name);
  return targets.some((t) => name === t || name.endsWith(`.${t}`));
}
