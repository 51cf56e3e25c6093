// Where this rank stands in the job, read from whichever launcher started it. Launchers nest
// (`srun torchrun ...`, `salloc ... mpirun ...`), and the one closest to the process sets the
// per-process variables, so the innermost kinds are asked first: unicc run, torchrun, Open MPI
// (under `salloc ... mpirun`, SLURM_PROCID belongs to Open MPI's daemon), Slurm, then PMI-1.
import { createHash } from "node:crypto";

export interface Placement {
  rank: number;
  size: number;
  /** host:port of the rendezvous store. */
  storeAddr: string;
  /** This rank hosts the store (rank 0 of every launcher but `unicc run`). */
  hostsStore: boolean;
  /** Which launcher's variables these were, for messages. */
  source: string;
}

type Env = NodeJS.ProcessEnv;

/** An integer variable within bounds, or undefined when unset; any other value is an error naming it. */
export function int(env: Env, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`unicc: ${name}=${raw} is not an integer between ${min} and ${max}`);
  return v;
}

function place(env: Env, rankVar: string, sizeVar: string): { rank: number; size: number } {
  const size = int(env, sizeVar, 1);
  const rank = int(env, rankVar, 0);
  if (size === undefined || rank === undefined)
    throw new Error(`unicc: ${rankVar} and ${sizeVar} must both be set (got ${rankVar}=${env[rankVar]}, ${sizeVar}=${env[sizeVar]})`);
  if (rank >= size) throw new Error(`unicc: ${rankVar}=${rank} must be below ${sizeVar}=${size}`);
  return { rank, size };
}

/** The first host of a Slurm node list such as `h[01-04,7],x`: `h01`. */
export function firstSlurmNode(list: string): string {
  const m = /^([^,[]*)(?:\[([^\]]*)\])?/.exec(list.trim());
  if (!m || !m[1] && !m[2]) throw new Error(`unicc: cannot read the Slurm node list '${list}'`);
  if (m[2] === undefined) return m[1];
  const first = m[2].split(",")[0].split("-")[0];
  return m[1] + first;
}

/**
 * A port every rank of one job derives alike from the job's identity, so none has to be told one:
 * 20000-31999, below Linux's ephemeral range (32768 up), where any outgoing connection on rank 0's
 * host could hold it.
 */
export function jobPort(jobKey: string): number {
  return 20000 + (createHash("sha256").update(jobKey).digest().readUInt32BE(0) % 12000);
}

/** MASTER_ADDR/MASTER_PORT or UNICC_STORE_PORT where the user gave them, else the launcher's own answer. */
function storeAddress(env: Env, host: string | undefined, jobKey: string, what: string): string {
  if (env.UNICC_RENDEZVOUS) return ""; // etcd: nobody hosts a store
  const addr = env.MASTER_ADDR || host;
  if (!addr)
    throw new Error(`unicc: started by ${what} across several hosts, and nothing says where rank 0 is: ` +
      "set MASTER_ADDR to rank 0's host (for example `mpirun -x MASTER_ADDR=<host of rank 0> ...`)");
  const port = int(env, "UNICC_STORE_PORT", 1, 65535) ?? int(env, "MASTER_PORT", 1, 65535) ?? jobPort(jobKey);
  return `${addr}:${port}`;
}

function fromOpenMpi(env: Env): Placement {
  const { rank, size } = place(env, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE");
  const local = int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1);
  const job = env.PMIX_NAMESPACE || env.OMPI_MCA_ess_base_jobid || env.OMPI_MCA_orte_ess_jobid || "";
  // All ranks on this host: rank 0 is here too.
  const host = local === size ? "127.0.0.1" : undefined;
  return { rank, size, storeAddr: storeAddress(env, host, `ompi/${job}`, "mpirun"), hostsStore: rank === 0, source: "Open MPI" };
}

function fromSlurm(env: Env): Placement {
  const { rank, size } = place(env, "SLURM_PROCID", "SLURM_STEP_NUM_TASKS");
  const nodes = env.SLURM_STEP_NODELIST || env.SLURM_JOB_NODELIST;
  const host = nodes ? firstSlurmNode(nodes) : undefined;
  const job = `slurm/${env.SLURM_JOB_ID ?? ""}.${env.SLURM_STEP_ID ?? ""}`;
  return { rank, size, storeAddr: storeAddress(env, host, job, "srun"), hostsStore: rank === 0, source: "Slurm" };
}

function fromTorchrun(env: Env): Placement {
  const { rank, size } = place(env, "RANK", "WORLD_SIZE");
  if (size > 1 && !env.UNICC_RENDEZVOUS && (!env.MASTER_ADDR || !env.MASTER_PORT))
    throw new Error("unicc: RANK and WORLD_SIZE are set but MASTER_ADDR or MASTER_PORT is missing; set both, or start the job with `unicc run`");
  const port = int(env, "UNICC_STORE_PORT", 1, 65535) ?? int(env, "MASTER_PORT", 1, 65535) ?? 0;
  return { rank, size, storeAddr: `${env.MASTER_ADDR ?? "127.0.0.1"}:${port}`, hostsStore: rank === 0, source: "torchrun" };
}

/** This rank's placement, or a world of one when no launcher's variables are set. */
export function readPlacement(env: Env): Placement {
  if (env.UNICC_STORE_ADDR || (env.UNICC_RENDEZVOUS && env.UNICC_RANK !== undefined))
    return { ...place(env, "UNICC_RANK", "UNICC_SIZE"), storeAddr: env.UNICC_STORE_ADDR ?? "", hostsStore: false, source: "unicc run" };
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) return fromTorchrun(env);
  if (env.OMPI_COMM_WORLD_RANK !== undefined || env.OMPI_COMM_WORLD_SIZE !== undefined) return fromOpenMpi(env);
  // A task of a step (srun) has SLURM_STEP_NUM_TASKS; sbatch's script, one process, has not.
  if (env.SLURM_PROCID !== undefined && env.SLURM_STEP_NUM_TASKS !== undefined) return fromSlurm(env);
  if (env.PMI_RANK !== undefined || env.PMI_SIZE !== undefined) {
    // MPICH's Hydra and other PMI-1 launchers.
    const { rank, size } = place(env, "PMI_RANK", "PMI_SIZE");
    const storeAddr = storeAddress(env, size === 1 ? "127.0.0.1" : undefined, `pmi/${env.PMI_KVSNAME ?? ""}`, "a PMI launcher");
    return { rank, size, storeAddr, hostsStore: rank === 0, source: "PMI" };
  }
  return { rank: 0, size: 1, storeAddr: "", hostsStore: false, source: "none" };
}
