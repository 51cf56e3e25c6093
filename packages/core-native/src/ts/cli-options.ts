/** Bad command-line input: the CLI prints the message on one line and exits 2. */
export class UsageError extends Error {}

/** An option's value as a whole number of at least `min`, or a UsageError naming the option. */
export function wholeNumber(flag: string, v: string, min: number): number {
  if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`${flag} needs a whole number of at least ${min}, got '${v}'`);
  return Number(v);
}

/**
 * Steps through command-line options, calling `visit` with each argument's flag (the part before
 * "=" of a long option) and a `value()` that takes the flag's value, from "--flag=value" or from
 * the next argument. `visit` returns "stop" where options end; the index of that argument (or
 * argv.length) is returned.
 */
export function walkOptions(
  argv: readonly string[],
  visit: (flag: string, value: () => string, arg: string) => "stop" | void,
): number {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const at = i;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = () => {
      if (eq > 0) return arg.slice(eq + 1);
      if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
      return argv[++i];
    };
    if (visit(flag, value, arg) === "stop") return at;
  }
  return argv.length;
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
