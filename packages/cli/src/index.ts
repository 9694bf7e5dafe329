export { main, usage, version } from './main.js';
export { type Command, type Output, UsageError } from './cli.js';
export { COMMANDS } from './commands/index.js';
