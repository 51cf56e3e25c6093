// The one option parser of unicc's commands (unicc run, k8s, doctor, unicc-bench, unicc-eval):
// commander, in one style. Each command keeps its hand-written usage as its help; bad input is a
// UsageError of one line naming the flag (the command prints it and exits 2); options end at the
// first operand or at "--", so a command's own flags (unicc run ... python train.py --lr 0.1) are
// never parsed here.
import { Command, CommanderError } from "commander";

/** Bad command-line input: the CLI prints the message on one line and exits 2. */
export class UsageError extends Error {}

/** An option's value as a whole number of at least `min`, or a UsageError naming the option. */
export function wholeNumber(flag: string, v: string, min: number): number {
  if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`${flag} needs a whole number of at least ${min}, got '${v}'`);
  return Number(v);
}

/** A parse function for Command.option: the value as wholeNumber takes it. */
export const whole = (flag: string, min: number) => (v: string) => wholeNumber(flag, v, min);

/**
 * A command in unicc's style: errors are thrown (never printed or exited on here), -h/--help is
 * an ordinary boolean option (`help`) so the caller prints its own usage, and nothing beyond the
 * declared operands is accepted.
 */
export function newCommand(name: string): Command {
  return new Command(name)
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} })
    .helpOption(false)
    .option("-h, --help")
    .allowExcessArguments(false);
}

/**
 * A command that runs another one: options end at the first operand or at "--", and the rest is
 * the command, untouched.
 */
export function newLauncherCommand(name: string): Command {
  return newCommand(name).argument("[command...]").passThroughOptions();
}

export interface Parsed {
  opts: Record<string, unknown>;
  operands: string[];
}

/**
 * Parses `argv` (the arguments after the command's name) with `cmd`. `aliases` renames flags that
 * commander cannot declare (mpirun's "-np": a short flag is one letter there), only where options
 * are: never in a value or in the command after them. Commander's errors become UsageErrors.
 */
export function parseCommand(cmd: Command, argv: readonly string[], aliases: Record<string, string> = {}): Parsed {
  const args = renameFlags(cmd, argv, aliases);
  try {
    cmd.parse(args, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) throw new UsageError(usageMessage(e, argv));
    throw e;
  }
  return { opts: cmd.opts(), operands: cmd.args };
}

function renameFlags(cmd: Command, argv: readonly string[], aliases: Record<string, string>): string[] {
  const args = [...argv];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--" || !args[i].startsWith("-")) break;
    args[i] = aliases[args[i]] ?? args[i];
    const option = cmd.options.find((o) => o.short === args[i] || o.long === args[i]);
    if (option && !option.isBoolean()) i++; // its value
  }
  return args;
}

/** Commander's message as one line, naming the flag as it was typed. */
function usageMessage(e: CommanderError, argv: readonly string[]): string {
  // A value is missing only after the last argument (commander takes the next one whatever it is).
  if (e.code === "commander.optionMissingArgument") return `${argv.at(-1)} needs a value`;
  return e.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " ");
}

/**
 * Runs a command's option parser: its options, or the exit code once help (0) or a one-line usage
 * error (2) has been printed.
 */
export function parseOrExit<T>(command: string, usage: string, parse: () => T | "help"): T | number {
  try {
    const parsed = parse();
    if (parsed !== "help") return parsed;
    process.stdout.write(usage);
    return 0;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${command}: ${e.message} (see ${command} --help)\n`);
    return 2;
  }
}
