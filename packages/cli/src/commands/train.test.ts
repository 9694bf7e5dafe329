import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openSafetensors } from '@tematrainer/io';
import { describe, expect, it } from 'vitest';
import { main } from '../main.js';

const fixtures = resolve(import.meta.dirname, '../../../../../shared/fixtures');
const dir = mkdtempSync(join(tmpdir(), 'tema-cli-train-'));

async function runMain(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
  return { code, stdout, stderr };
}

describe('tema train', () => {
  it('--help prints the field table', async () => {
    const r = await runMain('train', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('usage: tema train --config FILE');
    expect(r.stdout).toMatch(/^model_name_or_path +string +required /m);
    expect(r.stdout).toMatch(/^ {2}lora_alpha +number +8 /m);
    expect(r.stdout).toMatch(/^ {2}tema_beta +number +1 /m);
  });

  it('without --config exits 2', async () => {
    const r = await runMain('train');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('error: train needs --config FILE');
  });

  it('unknown field exits 2 naming it', async () => {
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, 'model_name_or_path: m\ntrain_file: t.jsonl\nlearnig_rate: 0.1\n');
    const r = await runMain('train', '--config', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`error: ${file}: unknown field "learnig_rate" (did you mean "learning_rate"?); \`tema train --help\` lists every field\n`);
  });

  it('trains from a YAML config', async () => {
    const data = join(dir, 'train.jsonl');
    const lines = Array.from({ length: 16 }, (_, i) => JSON.stringify({ text: `Tom saw ${i % 4} birds in the tree.` }));
    writeFileSync(data, `${lines.join('\n')}\n`);
    const out = join(dir, 'out');
    const file = join(dir, 'run.yaml');
    writeFileSync(
      file,
      [
        `model_name_or_path: ${join(fixtures, 'stories260K-hf')}`,
        `train_file: ${data}`,
        `output_dir: ${out}`,
        'max_steps: 3',
        'per_device_train_batch_size: 4',
        'logging_steps: 1',
        'lora:',
        '  r: 2',
        'tema:',
        '  tema_beta: 0.5',
      ].join('\n'),
    );
    const r = await runMain('train', '--config', file);
    expect(r.stderr).toContain('TEMA (tema_beta 0.5), 3 steps');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${out}\n`);
    expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).peft_type).toBe('LORA');
    expect(existsSync(join(out, 'adapter_ema.safetensors'))).toBe(true);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);

    // A second stage starts from the first one's adapter and EMA teacher.
    const stage2 = join(dir, 'stage2.yaml');
    const out2 = join(dir, 'out2');
    writeFileSync(
      stage2,
      [
        `model_name_or_path: ${join(fixtures, 'stories260K-hf')}`,
        `train_file: ${data}`,
        `output_dir: ${out2}`,
        `adapter_name_or_path: ${out}`,
        'max_steps: 1',
        'per_device_train_batch_size: 4',
        'learning_rate: 0',
        'lora:',
        '  r: 2',
        'tema:',
        '  tema_beta: 0.5',
        '  ema_decay: 0.5',
      ].join('\n'),
    );
    const r2 = await runMain('train', '--config', stage2);
    expect(r2.code).toBe(0);
    expect(r2.stderr).toContain(`started from the adapter and the EMA teacher in ${out}`);
    // With learning rate 0 the adapter stays the first stage's, and the EMA moves halfway to it.
    const first = await openSafetensors(join(out, 'adapter_model.safetensors'));
    const second = await openSafetensors(join(out2, 'adapter_model.safetensors'));
    const firstEma = await openSafetensors(join(out, 'adapter_ema.safetensors'));
    const secondEma = await openSafetensors(join(out2, 'adapter_ema.safetensors'));
    const name = [...first.tensors.keys()].find((n) => n.includes('lora_B'))!;
    const a = (await first.read(name, { as: 'f32' })).data;
    expect(Array.from((await second.read(name, { as: 'f32' })).data)).toEqual(Array.from(a));
    const e1 = (await firstEma.read(`ema.${name}`, { as: 'f32' })).data;
    const e2 = (await secondEma.read(`ema.${name}`, { as: 'f32' })).data;
    for (let i = 0; i < a.length; i++) expect(e2[i]).toBeCloseTo(0.5 * e1[i] + 0.5 * a[i], 6);
  });
});
