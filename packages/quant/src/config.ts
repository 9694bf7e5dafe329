import { ConfigError } from '@tematrainer/tensor';
import { checkBlockSize, NF4_DEFAULT_BLOCK_SIZE } from './nf4.js';

export type QuantType = 'nf4' | 'fp4';
export type ComputeDtype = 'float32' | 'float16' | 'bfloat16';

/**
 * 4-bit loading options under transformers' `BitsAndBytesConfig` names (camelCase here;
 * `parseBitsAndBytesConfig` reads the snake_case spelling of a config file).
 */
export interface BitsAndBytesConfig {
  /** Replace the linear layers of the decoder blocks by 4-bit ones. Default false. */
  loadIn4bit?: boolean;
  /** Only "nf4" is implemented; "fp4" is rejected. Default "nf4" (transformers defaults to "fp4"). */
  bnb4bitQuantType?: QuantType;
  /** Quantize the absmax values again to 8 bits (QLoRA's double quantization). Default false. */
  bnb4bitUseDoubleQuant?: boolean;
  /** Dtype of the matmul; the kernels compute in float32 whatever is set here. Default "float32". */
  bnb4bitComputeDtype?: ComputeDtype;
  /** Values per absmax block, one of 32..4096 (bitsandbytes' `blocksize`). Default 64. */
  bnb4bitBlocksize?: number;
  /**
   * Module names kept in full precision, matched as a whole name or a dot-separated suffix
   * (transformers' `llm_int8_skip_modules`). The output head `lm_head` is always kept.
   */
  llmInt8SkipModules?: string[];
}

/** A config with every default filled in and every field checked. */
export type ResolvedBitsAndBytesConfig = Required<BitsAndBytesConfig>;

const SNAKE_NAMES: Record<string, keyof BitsAndBytesConfig> = {
  load_in_4bit: 'loadIn4bit',
  bnb_4bit_quant_type: 'bnb4bitQuantType',
  bnb_4bit_use_double_quant: 'bnb4bitUseDoubleQuant',
  bnb_4bit_compute_dtype: 'bnb4bitComputeDtype',
  bnb_4bit_blocksize: 'bnb4bitBlocksize',
  llm_int8_skip_modules: 'llmInt8SkipModules',
};

/** transformers' fields that only concern 8-bit loading or serialisation; accepted and ignored. */
const IGNORED_NAMES = new Set([
  'load_in_8bit',
  'llm_int8_threshold',
  'llm_int8_enable_fp32_cpu_offload',
  'llm_int8_has_fp16_weight',
  'bnb_4bit_quant_storage',
  'quant_method',
  '_load_in_4bit',
  '_load_in_8bit',
]);

const COMPUTE_DTYPES: Record<string, ComputeDtype> = {
  float32: 'float32',
  fp32: 'float32',
  'torch.float32': 'float32',
  float16: 'float16',
  fp16: 'float16',
  half: 'float16',
  'torch.float16': 'float16',
  bfloat16: 'bfloat16',
  bf16: 'bfloat16',
  'torch.bfloat16': 'bfloat16',
};

/** Read a snake_case config (a `quantization_config` object of config.json or a training config). */
export function parseBitsAndBytesConfig(raw: Record<string, unknown>, source = 'quantization_config'): ResolvedBitsAndBytesConfig {
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const name = SNAKE_NAMES[key] ?? (Object.values(SNAKE_NAMES).includes(key as keyof BitsAndBytesConfig) ? key : undefined);
    if (name) config[name] = value;
    else if (!IGNORED_NAMES.has(key)) {
      throw new ConfigError(`${source}: unknown field "${key}"; expected one of ${Object.keys(SNAKE_NAMES).join(', ')}`);
    }
  }
  return resolveBitsAndBytesConfig(config as BitsAndBytesConfig, source);
}

/** Fill in the defaults and check every field, naming the field and the value found. */
export function resolveBitsAndBytesConfig(config: BitsAndBytesConfig, source = 'BitsAndBytesConfig'): ResolvedBitsAndBytesConfig {
  const loadIn4bit = config.loadIn4bit ?? false;
  if (typeof loadIn4bit !== 'boolean') throw new ConfigError(`${source}: load_in_4bit: expected true or false, found ${JSON.stringify(loadIn4bit)}`);

  const quantType = config.bnb4bitQuantType ?? 'nf4';
  if (quantType === 'fp4') {
    throw new ConfigError(`${source}: bnb_4bit_quant_type "fp4" is not implemented; use "nf4", which QLoRA recommends`);
  }
  if (quantType !== 'nf4') throw new ConfigError(`${source}: bnb_4bit_quant_type: expected "nf4", found ${JSON.stringify(quantType)}`);

  const doubleQuant = config.bnb4bitUseDoubleQuant ?? false;
  if (typeof doubleQuant !== 'boolean') {
    throw new ConfigError(`${source}: bnb_4bit_use_double_quant: expected true or false, found ${JSON.stringify(doubleQuant)}`);
  }

  const dtypeName = String(config.bnb4bitComputeDtype ?? 'float32');
  const computeDtype = COMPUTE_DTYPES[dtypeName];
  if (!computeDtype) {
    throw new ConfigError(`${source}: bnb_4bit_compute_dtype: expected float32, float16 or bfloat16, found ${JSON.stringify(dtypeName)}`);
  }

  const blocksize = config.bnb4bitBlocksize ?? NF4_DEFAULT_BLOCK_SIZE;
  checkBlockSize(blocksize, `${source}: bnb_4bit_blocksize`);

  const skip = config.llmInt8SkipModules ?? [];
  if (!Array.isArray(skip) || skip.some((s) => typeof s !== 'string')) {
    throw new ConfigError(`${source}: llm_int8_skip_modules: expected a list of module names, found ${JSON.stringify(skip)}`);
  }

  return {
    loadIn4bit,
    bnb4bitQuantType: quantType,
    bnb4bitUseDoubleQuant: doubleQuant,
    bnb4bitComputeDtype: computeDtype,
    bnb4bitBlocksize: blocksize,
    llmInt8SkipModules: [...skip],
  };
}
