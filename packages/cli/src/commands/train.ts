import { formatConfigHelp, loadTrainConfig, runTraining } from '@tematrainer/tema';
import { type Command, UsageError } from '../cli.js';

/** Exit code of a run that Ctrl-C stopped after saving its checkpoint (128 + SIGINT, as shells report it). */
const STOPPED_EXIT_CODE = 130;

function configPath(args: string[]): string {
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--config' || arg === '-c') {
      file = args[++i];
      if (file === undefined) throw new UsageError(`${arg} needs a FILE`);
    } else if (arg.startsWith('--config=')) {
      file = arg.slice('--config='.length);
    } else {
      throw new UsageError(`unknown argument for train: ${arg}`);
    }
  }
  if (file === undefined) throw new UsageError('train needs --config FILE');
  return file;
}

/**
 * Fine-tunes a LoRA adapter (plain SFT, or TEMA when the config has a tema: section) from a
 * JSON or YAML config with trl's field names. The first Ctrl-C finishes the current step, saves
 * a checkpoint and exits; a second one exits at once.
 */
export const trainCommand: Command = {
  name: 'train',
  summary: 'fine-tune a LoRA adapter with SFT or TEMA from a JSON or YAML config',
  usage: '--config FILE',
  help: `Config fields (trl's SFTConfig names; lora: as peft's LoraConfig; tema: turns on TEMA):\n\n${formatConfigHelp()}`,
  async run(args, output) {
    const config = loadTrainConfig(configPath(args));

    let stopRequested = false;
    const onInterrupt = () => {
      if (stopRequested) process.exit(STOPPED_EXIT_CODE);
      stopRequested = true;
      output.stderr('\ninterrupted: saving a checkpoint after this step (Ctrl-C again to quit without saving)\n');
    };
    process.on('SIGINT', onInterrupt);
    try {
      const result = await runTraining(config, { log: (message) => output.stderr(`${message}\n`), shouldStop: () => stopRequested });
      if (result.stopped) return STOPPED_EXIT_CODE;
      output.stdout(`${result.savedTo}\n`);
      return 0;
    } finally {
      process.off('SIGINT', onInterrupt);
    }
  },
};
