#!/usr/bin/env node
import { launch, parseRunArgs, USAGE, UsageError } from "./launcher/index.js";

const HELP = `unicc: unified collective communication

  unicc run [options] [--] <command...>   start a job (unicc run --help)
  unicc bench [options]                   allreduce benchmark against Gloo and Open MPI (unicc bench --help)
`;

async function main(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "--help" || sub === "-h") {
    process.stdout.write(HELP);
    return sub ? 0 : 2;
  }
  if (sub === "run") {
    if (rest[0] === "--help" || rest[0] === "-h") {
      process.stdout.write(USAGE);
      return 0;
    }
    try {
      return (await launch(parseRunArgs(rest))).exitCode;
    } catch (e) {
      if (e instanceof UsageError) {
        process.stderr.write(`unicc run: ${e.message}\n${USAGE}`);
        return 2;
      }
      throw e;
    }
  }
  if (sub === "bench") {
    const { runBench } = await import("./bench/index.js");
    return runBench(rest);
  }
  process.stderr.write(`unicc: unknown command '${sub}'\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`unicc: ${e.message}\n`);
    process.exit(1);
  },
);
