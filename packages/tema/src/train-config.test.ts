import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@tematrainer/tensor';
import { TEMA_DEFAULTS, TRAINING_DEFAULTS } from './args.js';
import { CONFIG_FIELDS, formatConfigHelp, loadTrainConfig, parseTrainConfig } from './train-config.js';

const required = { model_name_or_path: 'model', train_file: 'train.jsonl' };

function errorOf(raw: unknown): string {
  try {
    parseTrainConfig(raw, 'run.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('parseTrainConfig', () => {
  it('fills defaults and maps names', () => {
    const c = parseTrainConfig({ ...required, learning_rate: 1e-4, max_steps: 5, lora: { r: 4, lora_dropout: 0.1 } });
    expect(c.modelNameOrPath).toBe('model');
    expect(c.trainFile).toBe('train.jsonl');
    expect(c.evalFile).toBeNull();
    expect(c.resumeFromCheckpoint).toBeNull();
    expect(c.training.learningRate).toBe(1e-4);
    expect(c.training.maxSteps).toBe(5);
    expect(c.training.perDeviceTrainBatchSize).toBe(TRAINING_DEFAULTS.perDeviceTrainBatchSize);
    expect(c.lora.r).toBe(4);
    expect(c.lora.loraDropout).toBe(0.1);
    expect(c.lora.loraAlpha).toBe(8);
  });

  it('no tema section is plain SFT', () => {
    expect(parseTrainConfig(required).tema.temaBeta).toBe(0);
  });

  it('tema section defaults beta to 1', () => {
    const c = parseTrainConfig({ ...required, tema: { ema_decay: 0.95, kl_direction: 'jsd' } });
    expect(c.tema.temaBeta).toBe(TEMA_DEFAULTS.temaBeta);
    expect(c.tema.emaDecay).toBe(0.95);
    expect(c.tema.klDirection).toBe('jsd');
  });

  it('unknown field suggests the closest', () => {
    const message = errorOf({ ...required, learning_rat: 0.1 });
    expect(message).toContain('run.yaml');
    expect(message).toContain('"learning_rat"');
    expect(message).toContain('did you mean "learning_rate"?');
  });

  it('field in the wrong section suggests its section', () => {
    expect(errorOf({ ...required, lora_alpha: 16 })).toContain('did you mean "lora.lora_alpha"?');
    expect(errorOf({ ...required, lora: { ema_decay: 0.9 } })).toContain('did you mean "tema.ema_decay"?');
  });

  it('lists every unknown field', () => {
    const message = errorOf({ ...required, foo: 1, lora: { rank: 4 } });
    expect(message).toContain('"foo"');
    expect(message).toContain('"lora.rank"');
  });

  it('wrong type names field, expected and found', () => {
    expect(errorOf({ ...required, learning_rate: '1e-4' })).toBe('run.yaml: learning_rate: expected number, found string "1e-4"');
    expect(errorOf({ ...required, max_steps: 2.5 })).toBe('run.yaml: max_steps: expected integer, found number 2.5');
    expect(errorOf({ ...required, packing: 'yes' })).toBe('run.yaml: packing: expected boolean, found string "yes"');
    expect(errorOf({ ...required, lora: { target_modules: 3 } })).toContain('lora.target_modules: expected list of names');
    expect(errorOf({ ...required, tema: { kl_direction: 'both' } })).toContain('tema.kl_direction: expected "forward" | "reverse" | "jsd"');
    expect(errorOf({ ...required, lora: [1] })).toBe('run.yaml: lora: expected a mapping of lora fields, found a list [1]');
  });

  it('missing required field is an error', () => {
    expect(errorOf({ train_file: 'x.jsonl' })).toContain('missing required field "model_name_or_path"');
  });

  it('rejects negative tema_alpha and tema_beta', () => {
    expect(errorOf({ ...required, tema: { tema_alpha: -1 } })).toContain('tema_alpha must be >= 0, got -1');
    expect(errorOf({ ...required, tema: { tema_beta: -0.5 } })).toContain('tema_beta must be >= 0, got -0.5');
  });

  it('rejects ema_decay outside [0, 1)', () => {
    expect(errorOf({ ...required, tema: { ema_decay: 1 } })).toContain('ema_decay must be in [0, 1), got 1');
    expect(errorOf({ ...required, tema: { ema_decay: -0.1 } })).toContain('ema_decay must be in [0, 1), got -0.1');
    expect(parseTrainConfig({ ...required, tema: { ema_decay: 0 } }).tema.emaDecay).toBe(0);
  });

  it('rejects out-of-range training and LoRA values', () => {
    expect(errorOf({ ...required, per_device_train_batch_size: 0 })).toContain('per_device_train_batch_size must be a positive integer, got 0');
    expect(errorOf({ ...required, lora: { lora_dropout: 1 } })).toContain('lora_dropout must be in [0, 1), got 1');
  });
});

describe('loadTrainConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tema-config-'));

  it('reads YAML with 1e-4 as a number', () => {
    const file = join(dir, 'a.yaml');
    writeFileSync(file, 'model_name_or_path: m\ntrain_file: t.jsonl\nlearning_rate: 1e-4\nlora:\n  target_modules: [q_proj, v_proj]\ntema:\n  tema_beta: 0.5\n');
    const c = loadTrainConfig(file);
    expect(c.training.learningRate).toBe(1e-4);
    expect(c.lora.targetModules).toEqual(['q_proj', 'v_proj']);
    expect(c.tema.temaBeta).toBe(0.5);
  });

  it('reads JSON', () => {
    const file = join(dir, 'a.json');
    writeFileSync(file, JSON.stringify({ ...required, resume_from_checkpoint: true }));
    expect(loadTrainConfig(file).resumeFromCheckpoint).toBe(true);
  });

  it('invalid YAML names the file', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'model_name_or_path: [unclosed\n');
    expect(() => loadTrainConfig(file)).toThrow(/bad\.yaml: invalid YAML/);
  });

  it('missing file names it', () => {
    expect(() => loadTrainConfig(join(dir, 'none.yaml'))).toThrow(/cannot read config file .*none\.yaml/);
  });
});

describe('formatConfigHelp', () => {
  it('lists every field with its help', () => {
    const help = formatConfigHelp();
    for (const fields of Object.values(CONFIG_FIELDS)) {
      for (const f of fields) {
        const line = help.split('\n').find((l) => l.trimStart().startsWith(`${f.name} `));
        expect(line, f.name).toBeDefined();
        expect(line).toContain(f.help);
      }
    }
    expect(help).toMatch(/^learning_rate +number +2e-5 /m);
    expect(help).toMatch(/^ {2}ema_decay +number +0\.99 /m);
  });
});

describe('quantization_config', () => {
  const base = { model_name_or_path: 'model', train_file: 'train.jsonl' };

  it('reads a BitsAndBytesConfig with transformers names', () => {
    const config = parseTrainConfig({ ...base, quantization_config: { load_in_4bit: true, bnb_4bit_use_double_quant: true } }, 'run.yaml');
    expect(config.quantization?.loadIn4bit).toBe(true);
    expect(config.quantization?.bnb4bitUseDoubleQuant).toBe(true);
    expect(parseTrainConfig(base, 'run.yaml').quantization).toBeNull();
  });

  it('rejects unknown fields and fp4 with the file named', () => {
    expect(() => parseTrainConfig({ ...base, quantization_config: { load_in_3bit: true } }, 'run.yaml')).toThrow(/run\.yaml: quantization_config: unknown field "load_in_3bit"/);
    expect(() => parseTrainConfig({ ...base, quantization_config: { load_in_4bit: true, bnb_4bit_quant_type: 'fp4' } }, 'run.yaml')).toThrow(/fp4/);
  });
});
