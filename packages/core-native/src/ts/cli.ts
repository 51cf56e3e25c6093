#!/usr/bin/env node
import { HelpRequested, launch, launchOnSlurm, parseRunArgs, USAGE, UsageError } from "./launcher/index.js";

const HELP = `usage: unicc <command> [options]

  unicc run [options] [--] <command...>   start a job: ranks, rendezvous store, output (unicc run --help)
  unicc k8s [options] -- <command...>     Kubernetes manifests of a job (unicc k8s --help)
  unicc doctor                            what unicc finds here (Node, core, frameworks, /dev/shm, network, CUDA)
`;

async function run(argv: string[]): Promise<number> {
  try {
    const o = parseRunArgs(argv);
    // Inside an allocation, its nodes are the hosts (unless -H/--hostfile says otherwise).
    const onSlurm = o.slurm !== undefined || (process.env.SLURM_JOB_ID !== undefined && !o.hostsGiven && !o.ray);
    return (onSlurm ? await launchOnSlurm(o, o.np, o.slurm) : await launch(o)).exitCode;
  } catch (e) {
    if (e instanceof HelpRequested) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`unicc run: ${e.message} (see unicc run --help)\n`);
      return 2;
    }
    throw e;
  }
}

async function main(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "run":
      return run(rest);
    case "k8s":
      return (await import("./k8s.js")).runK8s(rest);
    case "doctor":
      return (await import("./doctor.js")).doctorCommand(rest);
    case "-h":
    case "--help":
      process.stdout.write(HELP);
      return 0;
    default:
      process.stderr.write(sub === undefined ? HELP : `unicc: unknown command '${sub}'\n${HELP}`);
      return 2;
  }
}

// A reader that went away (unicc run ... | head) must not crash the launcher before it stops the ranks.
for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`unicc: ${e.message}\n`);
    process.exit(1);
  },
);
