import { inspectFile } from '@tematrainer/io';
import { FormatError } from '@tematrainer/tensor';
import { type Command, rejectOptions, UsageError } from '../cli.js';

/** Prints the header, metadata and tensor table of a model or state file. */
export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'print the format, metadata and tensors of a safetensors, GGUF, llama2.c or trainer-state file',
  usage: 'FILE',
  async run(args, output) {
    rejectOptions(this, args);
    if (args.length !== 1) throw new UsageError(`inspect takes one FILE, got ${args.length} arguments`);

    let text: string;
    try {
      text = await inspectFile(args[0]);
    } catch (error) {
      if (error instanceof FormatError) {
        output.stderr(`error: ${error.message}\n`);
        return 2;
      }
      const code = (error as NodeJS.ErrnoException).code;
      if (typeof code === 'string') {
        output.stderr(`error: cannot read ${args[0]}: ${(error as Error).message}\n`);
        return 1;
      }
      throw error;
    }
    output.stdout(`${text}\n`);
    return 0;
  },
};
