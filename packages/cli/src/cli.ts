/** Where a command writes; `main` defaults to the process streams, tests pass collectors. */
export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** One subcommand of `tema`. Adding a command is one file under commands/ and one line in commands/index.ts. */
export interface Command {
  name: string;
  /** One line for `tema --help`. */
  summary: string;
  /** The argument synopsis after `tema <name>`, for example `FILE`. */
  usage: string;
  /** More text for `tema <name> --help`, after the synopsis and summary (for example a config's fields). */
  help?: string;
  /** Runs the command on the arguments after its name and returns the process exit code. */
  run(args: string[], output: Output): Promise<number>;
}

/** A wrong command line: `main` prints `error: <message>` and the usage, and exits with 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Rejects any option in `args` (an argument starting with `-`), since no command takes one yet. */
export function rejectOptions(command: Command, args: string[]): void {
  const option = args.find((a) => a.startsWith('-') && a !== '-');
  if (option) throw new UsageError(`unknown option for ${command.name}: ${option}`);
}
