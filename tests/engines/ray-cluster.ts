// A real local Ray cluster for the engine tests: a head on 127.0.0.2 (Ray swaps 127.0.0.1 for the
// machine's own address) and worker nodes joined to it on other loopback addresses, each
// `ray start --block`, stopped by SIGTERM to that process (`ray stop` would stop every Ray here).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

import { freePorts } from "../free-port.js";

const SETUP = fileURLToPath(new URL("./setup-ray-venv.sh", import.meta.url));
const ENV = { ...process.env, RAY_USAGE_STATS_ENABLED: "0" };

/** The Ray venv's python (tests/engines/setup-ray-venv.sh: torch, Ray Train, unicc). */
export function rayPython(): string {
  return execFileSync("bash", [SETUP], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").pop()!;
}

export class RayNode {
  private constructor(private readonly proc: ChildProcess) {}

  /**
   * `ray start --block --node-ip-address=ip` with these arguments, up once the cluster lists the
   * node with its CPUs (`unicc run --ray`'s own view; `ray status` answers earlier), within 90 s.
   */
  static async start(python: string, address: string, ip: string, args: string[]): Promise<RayNode> {
    const ray = python.replace(/python$/, "ray");
    const node = new RayNode(spawn(ray, ["start", "--block", "--disable-usage-stats", `--node-ip-address=${ip}`, ...args], { stdio: "ignore", env: ENV }));
    const until = Date.now() + 90_000;
    for (;;) {
      let listed = "";
      const st = spawn(python, ["-m", "unicc._ray", "hosts", address], { stdio: ["ignore", "pipe", "ignore"] });
      st.stdout.on("data", (d) => (listed += d));
      await new Promise((r) => st.on("close", r));
      if (listed.split("\n").some((l) => l.startsWith(`${ip}:`))) return node;
      if (Date.now() > until || node.proc.exitCode !== null) {
        await node.stop();
        throw new Error(`ray start ${args.join(" ")} did not come up within 90 s`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** A head on 127.0.0.2 with `cpus` CPUs, its files under tempDir. */
  static async head(python: string, cpus: number, tempDir: string): Promise<{ head: RayNode; address: string }> {
    const port = await freePorts("Ray test head");
    const address = `127.0.0.2:${port}`;
    const head = await RayNode.start(python, address, "127.0.0.2", ["--head", `--port=${port}`, `--num-cpus=${cpus}`,
      "--include-dashboard=false", `--temp-dir=${tempDir}`]);
    return { head, address };
  }

  /** SIGTERM, then SIGKILL after 20 s; resolves once the process has exited. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
    await gone;
    clearTimeout(timer);
  }
}
