// `unicc run` under Slurm: inside an allocation (salloc, sbatch) the ranks go onto its nodes as
// job steps through srun, not ssh; with --slurm the launcher asks for the allocation itself and
// gives it back when the job ends, however it ends (FastGPU's point: resources live as long as
// the job). Slurm's own tools do the work: scontrol expands node lists, salloc allocates, scancel
// releases.
import { execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

import { launch, type LaunchIO, type LaunchResult } from "./launch.js";
import { type ElasticLaunch, firstSlots, UsageError, type HostSlots, type LaunchOptions, type SlurmRequest } from "./options.js";

function slurmTool(argv: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { env, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${argv.join(" ")} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** SLURM_TASKS_PER_NODE's form, "2(x3),1", as one count per node. */
export function tasksPerNode(spec: string): number[] {
  return spec.split(",").flatMap((part) => {
    const m = /^(\d+)(?:\(x(\d+)\))?$/.exec(part.trim());
    if (!m) throw new UsageError(`cannot read SLURM_TASKS_PER_NODE '${spec}'`);
    return Array<number>(Number(m[2] ?? 1)).fill(Number(m[1]));
  });
}

/** The allocation's nodes in order, each with the tasks Slurm gave it. */
export async function allocationHosts(env: NodeJS.ProcessEnv): Promise<HostSlots[]> {
  const list = env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
  if (!list) throw new UsageError("inside a Slurm allocation but SLURM_JOB_NODELIST is not set");
  const names = (await slurmTool(["scontrol", "show", "hostnames", list], env)).split("\n").filter(Boolean);
  const counts = env.SLURM_TASKS_PER_NODE ? tasksPerNode(env.SLURM_TASKS_PER_NODE) : names.map(() => 1);
  if (counts.length !== names.length)
    throw new UsageError(`SLURM_TASKS_PER_NODE '${env.SLURM_TASKS_PER_NODE}' does not match the ${names.length} nodes of ${list}`);
  return names.map((name, i) => ({ name, slots: counts[i] }));
}

/** srun for one rank, with a failed node's exit made a failure (dist/ -> scripts/). */
const SRUN_RANK = fileURLToPath(new URL("../scripts/srun-rank.sh", import.meta.url));

/** Each rank is one task of its own step on its node; steps share the allocation's CPUs. */
function srunAgent(jobId: string, stepName: string): string {
  return `sh ${SRUN_RANK} {host} ${jobId} --jobid=${jobId} --job-name=${stepName} --nodes=1 --ntasks=1 --nodelist={host} --overlap --quiet --kill-on-bad-exit=0 --`;
}

/** Ends whatever steps of ours are still running (a rank's srun killed with SIGKILL leaves its task). */
async function cancelSteps(jobId: string, stepName: string, env: NodeJS.ProcessEnv): Promise<void> {
  const steps = await slurmTool(["squeue", "-h", "-s", "-j", jobId, "-o", "%i %j"], env).catch(() => "");
  const ours = steps.split("\n").map((l) => l.trim().split(/\s+/)).filter(([id, name]) => id && name === stepName).map(([id]) => id);
  if (ours.length) await slurmTool(["scancel", "--quiet", ...ours], env).catch(() => undefined);
}

/** `elastic`: --no-kill, so that a node failing ends its ranks' steps only, not the allocation. */
async function allocate(req: SlurmRequest, elastic: boolean, env: NodeJS.ProcessEnv, stderr: NodeJS.WritableStream): Promise<string> {
  const argv = ["salloc", "--no-shell", `--nodes=${req.nodes}`, `--ntasks-per-node=${req.tasksPerNode}`, "--job-name=unicc-run",
    ...(elastic ? ["--no-kill"] : []), ...(req.partition ? [`--partition=${req.partition}`] : [])];
  stderr.write(`unicc run: asking Slurm for ${req.nodes} node(s) x ${req.tasksPerNode} task(s)\n`);
  const out = await new Promise<string>((resolve, reject) => {
    const c = spawn(argv[0], argv.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    c.stdout.on("data", (d) => (text += d));
    c.stderr.on("data", (d) => (text += d));
    c.on("error", (e) => reject(new Error(`cannot run salloc: ${e.message}`)));
    c.on("close", (code) => (code === 0 ? resolve(text) : reject(new Error(`salloc failed (exit ${code}): ${text.trim()}`))));
  });
  const m = /Granted job allocation (\d+)/.exec(out);
  if (!m) throw new Error(`salloc granted no allocation: ${out.trim()}`);
  return m[1];
}

/** What a shell inside the allocation would see of it. */
async function allocationEnv(jobId: string, req: SlurmRequest, env: NodeJS.ProcessEnv): Promise<NodeJS.ProcessEnv> {
  const nodes = (await slurmTool(["squeue", "-h", "-j", jobId, "-o", "%N"], env)).trim();
  return { ...env, SLURM_JOB_ID: jobId, SLURM_JOB_NODELIST: nodes, SLURM_TASKS_PER_NODE: `${req.tasksPerNode}(x${req.nodes})` };
}

/**
 * An elastic job on an allocation starts on all its slots (or -np's) and can only shrink: a rank's
 * step that dies, or a node that fails (its steps end), is a rank lost.
 */
function shrinkOnly(e: ElasticLaunch, hosts: HostSlots[]): ElasticLaunch {
  if (e.discovery) return e; // inside an allocation, a script that lists other allocations' nodes
  const slots = hosts.reduce((n, h) => n + h.slots, 0);
  if (e.minNp > slots) throw new UsageError(`--min-np ${e.minNp} is more than the ${slots} slots of the allocation`);
  return { ...e, maxNp: slots };
}

/**
 * Runs the job on Slurm: on the allocation this process is in (SLURM_JOB_ID), or on one asked for
 * with `request` and cancelled afterwards. `-np N` takes the first N slots, as with -H.
 */
export async function launchOnSlurm(o: LaunchOptions, np: number | undefined, request: SlurmRequest | undefined,
  io: LaunchIO = {}): Promise<LaunchResult> {
  const env = io.env ?? process.env;
  const stderr = io.stderr ?? process.stderr;
  const allocated = request ? await allocate(request, !!o.elastic, env, stderr) : undefined;
  try {
    const jobEnv = allocated ? await allocationEnv(allocated, request!, env) : env;
    const jobId = jobEnv.SLURM_JOB_ID!;
    let hosts = await allocationHosts(jobEnv);
    if (np !== undefined) hosts = firstSlots(hosts, np, "the allocation");
    const stepName = `unicc-${process.pid}`;
    try {
      return await launch({ ...o, hosts, elastic: o.elastic && shrinkOnly(o.elastic, hosts), launchAgent: srunAgent(jobId, stepName), agentForAll: true },
        { ...io, env: jobEnv });
    } finally {
      await cancelSteps(jobId, stepName, jobEnv);
    }
  } finally {
    if (allocated) {
      await slurmTool(["scancel", allocated], env).catch((e: Error) => stderr.write(`unicc run: ${e.message}; cancel job ${allocated} by hand\n`));
      stderr.write(`unicc run: released Slurm job ${allocated}\n`);
    }
  }
}
