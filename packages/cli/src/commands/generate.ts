import { generate } from '@tematrainer/models';
import { type Command, UsageError } from '../cli.js';
import { loadModelOptions, MODEL_OPTIONS, MODEL_USAGE, numberOption, parseOptions } from './model-options.js';

const OPTIONS = {
  ...MODEL_OPTIONS,
  prompt: { type: 'string' },
  'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
} as const;

/** Continues a prompt and streams the text to stdout: greedy, or sampled when --temperature is above 0. */
export const generateCommand: Command = {
  name: 'generate',
  summary: 'continue a prompt with a model (and a LoRA adapter) and stream the text',
  usage: `${MODEL_USAGE} --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]`,
  help: [
    'Prints the prompt followed by its continuation. Decoding is greedy unless --temperature is above 0.',
    '  --max-new-tokens N  tokens to generate at most (default 128); generation also stops at EOS',
    '  --temperature T     divide the logits by T before sampling (default 0: greedy)',
    '  --top-k K           sample among the K most likely tokens only',
    '  --top-p P           sample among the most likely tokens whose probabilities add up to P',
    '  --seed S            seed of the sampler (default 0)',
    '  --tokenizer FILE    the tok*.bin of a llama2.c checkpoint, when it is not next to it',
  ].join('\n'),
  async run(args, output) {
    const values = parseOptions('generate', args, OPTIONS);
    if (values.prompt === undefined) throw new UsageError('generate needs --prompt TEXT');
    const maxNewTokens = numberOption('max-new-tokens', values['max-new-tokens'], { integer: true, min: 1 }) ?? 128;
    const temperature = numberOption('temperature', values.temperature, { min: 0 });
    const topK = numberOption('top-k', values['top-k'], { integer: true, min: 1 });
    const topP = numberOption('top-p', values['top-p'], { min: 0 });
    if (topP !== undefined && topP > 1) throw new UsageError(`--top-p must be at most 1, got ${topP}`);
    const seed = numberOption('seed', values.seed, { integer: true, min: 0 });

    const { loaded, lora } = await loadModelOptions('generate', values);
    try {
      const promptIds = loaded.tokenizer.encode(values.prompt);
      output.stdout(values.prompt);
      await generate(loaded.model, loaded.tokenizer, promptIds, {
        maxNewTokens,
        temperature,
        topK,
        topP,
        seed,
        onText: (text) => output.stdout(text),
      });
      output.stdout('\n');
      return 0;
    } finally {
      lora?.unload();
      loaded.model.dispose();
    }
  },
};
