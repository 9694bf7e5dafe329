import type { Command } from '../cli.js';
import { deviceCommand } from './device.js';
import { generateCommand } from './generate.js';
import { inspectCommand } from './inspect.js';
import { logitsCommand } from './logits.js';
import { trainCommand } from './train.js';

/** The subcommands of `tema`, in the order `tema --help` lists them. */
export const COMMANDS: readonly Command[] = [
  deviceCommand,
  inspectCommand,
  generateCommand,
  logitsCommand,
  trainCommand,
];
