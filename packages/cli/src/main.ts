import { readFileSync } from 'node:fs';
import { DeviceError, TemaError } from '@tematrainer/tensor';
import { type Command, type Output, UsageError } from './cli.js';
import { COMMANDS } from './commands/index.js';

const processOutput: Output = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** Reads the version field of this package's package.json, one folder above both src/ and dist/. */
export function version(): string {
  const json = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return json.version;
}

/** Formats `tema --help`: the synopsis and one line per subcommand. */
export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = [
    'usage: tema <command> [arguments]',
    '       tema --help | --version',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run `tema <command> --help` for a command's arguments.",
  ];
  return `${lines.join('\n')}\n`;
}

function commandUsage(command: Command): string {
  const help = command.help ? `\n${command.help}\n` : '';
  return `usage: tema ${command.name}${command.usage ? ` ${command.usage}` : ''}\n${command.summary}\n${help}`;
}

/** Runs the `tema` command line `argv` (without the node and script paths) and returns the exit code. */
export async function main(argv: string[], output: Output = processOutput): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    output.stderr(`error: no command given\n${usage()}`);
    return 2;
  }
  if (first === '--help' || first === '-h') {
    output.stdout(usage());
    return 0;
  }
  if (first === '--version' || first === '-V') {
    output.stdout(`${version()}\n`);
    return 0;
  }

  const command = COMMANDS.find((c) => c.name === first);
  if (!command) {
    const kind = first.startsWith('-') ? 'option' : 'command';
    output.stderr(`error: unknown ${kind}: ${first}\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    output.stdout(commandUsage(command));
    return 0;
  }

  try {
    return await command.run(rest, output);
  } catch (error) {
    if (error instanceof UsageError) {
      output.stderr(`error: ${error.message}\n${commandUsage(command)}`);
      return 2;
    }
    // The library's errors carry their own explanation and remedy, so a stack trace adds nothing.
    // Invalid input (a config, a file in no known format, shapes that do not fit) exits 2; a
    // missing device or a file that cannot be read or written exits 1.
    if (error instanceof DeviceError) {
      output.stderr(`error: ${error.message}\n`);
      return 1;
    }
    if (error instanceof TemaError) {
      output.stderr(`error: ${error.message}\n`);
      return 2;
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === 'string') {
      output.stderr(`error: ${(error as Error).message}\n`);
      return 1;
    }
    throw error;
  }
}
