// A real Slurm cluster on the emulated machines of tests/cluster: munged and slurmctld in the
// root namespace, one slurmd per machine (each with its own hostname, /dev/shm and /tmp), all
// pointed at a slurm.conf of their own through SLURM_CONF. Debian's slurmctld, slurmd,
// slurm-client and munge; nothing is installed or started machine-wide.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

import { up, type Cluster } from "../cluster/cluster.js";
import { freePorts } from "../free-port.js";

export interface SlurmCluster {
  cluster: Cluster;
  /** SLURM_CONF and the rest of the environment srun/salloc/squeue need. */
  env: NodeJS.ProcessEnv;
  /** Node names, the machines' hostnames. */
  nodes: string[];
  /** Jobs slurmctld still knows as pending or running. */
  queue(): string[];
  down(): Promise<void>;
}

/** Why Slurm cannot run here, or null. */
export function slurmUnavailable(): string | null {
  for (const tool of ["slurmctld", "slurmd", "srun", "munged"])
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0)
      return `${tool} not found (Debian: apt-get install slurmctld slurmd slurm-client munge)`;
  return null;
}

function waitFor(what: string, ok: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (ok()) return resolve();
      if (Date.now() > until) return reject(new Error(`slurm test cluster: ${what} within ${ms} ms`));
      setTimeout(tick, 100);
    };
    tick();
  });
}

export async function slurmUp(hosts: number, cpusPerNode = 4): Promise<SlurmCluster> {
  const cluster = await up({ hosts, perFlowMbit: 0 });
  // Not the temporary folder: each machine has its own, and every daemon reads this folder.
  const dir = mkdtempSync("/var/tmp/unicc-slurm-");
  chmodSync(dir, 0o755); // munged runs as the munge user and must reach its folder
  const daemons: ChildProcess[] = [];
  const stop = async () => {
    for (const d of daemons) d.kill("SIGTERM");
    await Promise.all(daemons.map((d) => (d.exitCode !== null || d.signalCode !== null ? 0 : new Promise((r) => d.once("exit", r)))));
    await cluster.down();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const munge = join(dir, "munge");
    mkdirSync(munge, { mode: 0o711 }); // clients need execute permission to reach the socket
    writeFileSync(join(munge, "key"), Buffer.from(execFileSync("head", ["-c", "1024", "/dev/urandom"])), { mode: 0o400 });
    const mungeUid = Number(execFileSync("id", ["-u", "munge"], { encoding: "utf8" }));
    const mungeGid = Number(execFileSync("id", ["-g", "munge"], { encoding: "utf8" }));
    chownSync(munge, mungeUid, mungeGid);
    chownSync(join(munge, "key"), mungeUid, mungeGid);
    const socket = join(munge, "socket");
    daemons.push(spawn("runuser", ["-u", "munge", "--", "munged", "--foreground", "--key-file", join(munge, "key"),
      "--socket", socket, "--pid-file", join(munge, "pid"), "--log-file", join(munge, "log"), "--seed-file", join(munge, "seed")],
    { stdio: "ignore" }));
    await waitFor("munged did not start", () => spawnSync("test", ["-S", socket]).status === 0, 10_000);

    const nodes = cluster.hosts.map((h) => h.hostname);
    const ports = await freePorts("slurm test cluster", 2); // slurmctld's, and slurmd's on the next
    const conf = join(dir, "slurm.conf");
    writeFileSync(conf, [
      `ClusterName=unicc${cluster.tag}`,
      `SlurmctldHost=${hostname()}(${cluster.rootAddr})`,
      "SlurmUser=root", "SlurmdUser=root",
      `SlurmctldPort=${ports}`, `SlurmdPort=${ports + 1}`,
      "AuthType=auth/munge", "CredType=cred/munge", `AuthInfo=socket=${socket}`,
      `StateSaveLocation=${dir}/state`, `SlurmdSpoolDir=${dir}/spool-%n`,
      `SlurmctldPidFile=${dir}/slurmctld.pid`, `SlurmdPidFile=${dir}/slurmd-%n.pid`,
      `SlurmctldLogFile=${dir}/slurmctld.log`, `SlurmdLogFile=${dir}/slurmd-%n.log`,
      "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SlurmdParameters=config_overrides",
      "ReturnToService=2", "MpiDefault=none", "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
      "InactiveLimit=0", "KillWait=2", "MinJobAge=2",
      ...cluster.hosts.map((h) => `NodeName=${h.hostname} NodeAddr=${h.addr} CPUs=${cpusPerNode} State=UNKNOWN`),
      "PartitionName=unicc Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
      "",
    ].join("\n"));
    mkdirSync(`${dir}/state`);
    for (const n of nodes) mkdirSync(`${dir}/spool-${n}`);
    const env = { ...process.env, SLURM_CONF: conf };
    daemons.push(spawn("slurmctld", ["-D", "-i"], { env, stdio: "ignore" }));
    cluster.hosts.forEach((h, i) =>
      daemons.push(cluster.exec(i, ["slurmd", "-D", "-N", h.hostname], { env, stdio: "ignore" })),
    );
    const sinfo = () => spawnSync("sinfo", ["-h", "-N", "-o", "%T"], { env, encoding: "utf8" }).stdout.trim().split("\n");
    await waitFor("the nodes did not come up idle", () => sinfo().length === hosts && sinfo().every((s) => s === "idle"), 20_000)
      .catch((e: Error) => { throw new Error(`${e.message} (sinfo: ${sinfo().join(", ")})`); });
    return {
      cluster,
      env,
      nodes,
      queue: () => spawnSync("squeue", ["-h", "-o", "%i %T"], { env, encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean),
      down: stop,
    };
  } catch (e) {
    const log = (f: string) => { try { return readFileSync(join(dir, f), "utf8").slice(-2000); } catch { return ""; } };
    const why = [`${(e as Error).message}`, `slurmctld.log: ${log("slurmctld.log")}`,
      ...cluster.hosts.map((h) => `slurmd-${h.hostname}.log: ${log(`slurmd-${h.hostname}.log`)}`)].join("\n");
    await stop();
    throw new Error(why);
  }
}
