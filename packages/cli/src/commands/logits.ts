import { writeSafetensors } from '@tematrainer/io';
import { fromData, noGrad, tidy } from '@tematrainer/tensor';
import { type Command, UsageError } from '../cli.js';
import { loadModelOptions, MODEL_OPTIONS, MODEL_USAGE, parseOptions } from './model-options.js';

const OPTIONS = { ...MODEL_OPTIONS, text: { type: 'string' }, out: { type: 'string' } } as const;

/**
 * Writes the token ids of a text and the model's logits at every position to a safetensors file,
 * for comparing against another implementation: `input_ids` I64 [1, T] (torch's dtype for ids)
 * and `logits` F32 [1, T, vocab].
 */
export const logitsCommand: Command = {
  name: 'logits',
  summary: 'write the token ids and logits of a text to a safetensors file',
  usage: `${MODEL_USAGE} --text TEXT --out FILE.safetensors`,
  help: 'Writes input_ids (I64 [1, T]) and logits (F32 [1, T, vocab]) for the tokenized --text.',
  async run(args, output) {
    const values = parseOptions('logits', args, OPTIONS);
    if (values.text === undefined) throw new UsageError('logits needs --text TEXT');
    if (values.out === undefined) throw new UsageError('logits needs --out FILE.safetensors');

    const { loaded, lora } = await loadModelOptions('logits', values);
    try {
      const ids = loaded.tokenizer.encode(values.text);
      if (ids.length === 0) throw new UsageError('--text gives no tokens');
      const logits = tidy(() => noGrad(() => loaded.model.forward(fromData(ids, [1, ids.length], 'i32'))));
      const data = (await logits.data()) as Float32Array;
      const shape = [...logits.shape];
      logits.dispose();
      await writeSafetensors(values.out, {
        input_ids: { dtype: 'I64', shape: [1, ids.length], data: BigInt64Array.from(ids, (id) => BigInt(id)) },
        logits: { dtype: 'F32', shape, data },
      });
      output.stderr(`wrote ${values.out}: input_ids [1, ${ids.length}], logits [${shape.join(', ')}]\n`);
      return 0;
    } finally {
      lora?.unload();
      loaded.model.dispose();
    }
  },
};
