#!/usr/bin/env node
// unicc-bench: the repository's benchmarks of unicc against its peers (README.md).
const HELP = `usage: unicc-bench [allreduce] [options]   allreduce on this host vs Gloo and Open MPI (unicc-bench --help)
       unicc-bench engine [options]        a training step's gradient exchange on emulated hosts vs DDP/Gloo
                                           (unicc-bench engine --help)
`;

async function main([sub, ...rest]: string[]): Promise<number> {
  if (sub === "engine") return (await import("./engine.js")).runEngineBench(rest);
  if (sub === "allreduce") return (await import("./allreduce.js")).runAllreduceBench(rest);
  // No benchmark named: the allreduce one, whose --help names the other.
  if (sub === undefined || sub.startsWith("-")) return (await import("./allreduce.js")).runAllreduceBench(sub === undefined ? [] : [sub, ...rest]);
  process.stderr.write(`unicc-bench: unknown benchmark '${sub}'\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`unicc-bench: ${e.message}\n`);
    process.exit(1);
  },
);
