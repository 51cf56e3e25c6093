// Times of elastic jobs (README "Elastic jobs"): from a rank's death (or its host's link cut, or rank
// 0 rewriting the discovery script's answer to offer or drop a slot) to rank 0 training again at the
// new size, read from the workers' "AT fault|start <ms>" lines. Medians of --runs runs (default 3).
//   npx vite-node tests/elastic/times.ts -- [--runs N] [--emulated] [--only REGEX]
//   (--emulated: also 2 emulated hosts, as root; --only: the rows whose description matches REGEX)
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { up } from "../cluster/cluster.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const CLI = `${root}packages/core-native/dist/cli.js`;
const TF = `${root}packages/adapter-tf/test/workers/elastic.mjs`;
const TORCH = `${root}packages/adapter-torch-bridge/test/workers/elastic_train.py`;
const PY = `${root}packages/adapter-torch-bridge/.venv/bin/python`;
const runs = Number(process.argv[process.argv.indexOf("--runs") + 1] || 3) || 3;
const ENV = { TF_NUM_INTRAOP_THREADS: "1", TF_NUM_INTEROP_THREADS: "1", OMP_NUM_THREADS: "1" };

function job(args: string[], env: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, "run", ...args], { env: { ...process.env, ...ENV, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => c.kill("SIGKILL"), 120_000);
    c.on("close", (code) => {
      clearTimeout(timer);
      const fault = Number(/AT fault (\d+)/.exec(out)?.[1]);
      const starts = [...out.matchAll(/AT start (\d+)/g)].map((m) => Number(m[1])).filter((t) => t > fault);
      if (code !== 0 || !fault || !starts.length) reject(new Error(`job failed (${code})\n${out}\n${err}`));
      else resolve(starts[starts.length - 1] - fault);
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const only = new RegExp(process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : "");
async function measure(what: string, make: (i: number) => Promise<number>) {
  if (!only.test(what)) return;
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) ms.push(await make(i));
  console.log(`| ${what} | ${(median(ms) / 1000).toFixed(2)} s | ${ms.map((m) => (m / 1000).toFixed(2)).join(", ")} |`);
}

const tf = (seed: number, fault: string[], place: string[]) => ["--min-np", "2", "--max-np", "4", ...place, "--timeout", "3", "--", "node", TF, "train", "--seed", String(seed), "--steps", "10", "--commit-every", "2", ...fault];
const torch = (seed: number, kills: string, place: string[], extra: string[] = []) => ["--min-np", "2", "--max-np", "4", ...place, "--timeout", "3", ...extra, "--", PY, TORCH, "train", String(seed), "12", "2", kills];

console.log("| what | median | runs |\n| --- | --- | --- |");
await measure("tfjs, 1 host: 4 ranks, one SIGKILLed -> training at 3", (i) => job(tf(i + 1, ["--kill", "2@5"], ["-np", "4"])));
await measure("torch, 1 host: 4 ranks, one SIGKILLed -> training at 3", (i) => job(torch(i + 1, "2@5", ["-np", "4"])));
/** A torch job on the discovery script's `first` hosts until rank 0 rewrites them to `then` (size `size`) at step 4. */
async function joining(i: number, first: string, then: string, size: number, place: string[] = []): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "unicc-elastic-"));
  try {
    const hosts = join(dir, "hosts"), script = join(dir, "discover.sh");
    writeFileSync(hosts, `${first}\n`);
    writeFileSync(script, `#!/bin/sh\ncat ${hosts}\n`);
    chmodSync(script, 0o755);
    return await job(torch(i + 1, "", place, ["--host-discovery-script", script, "--discovery-interval", "0.2"]),
      { JOIN_AT: "4", JOIN_HOSTS: hosts, JOIN_LINE: then, JOIN_SIZE: String(size) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
await measure("torch, 1 host: 2 ranks, a slot offered -> training at 3 (newcomer's start included)", (i) => joining(i, "localhost:2", "localhost:3", 3));
await measure("torch, 1 host: 3 ranks, a slot no longer listed -> training at 2", (i) => joining(i, "localhost:3", "localhost:2", 2));
if (process.argv.includes("--emulated")) {
  const cluster = await up({ hosts: 2 });
  try {
    const place = ["-H", cluster.hosts.map((h) => `${h.name}:2`).join(","), "--launch-agent", cluster.launchAgent, "--rendezvous-addr", cluster.rootAddr];
    await measure("tfjs, 2 emulated hosts x 2: one rank SIGKILLed -> training at 3", (i) => job(tf(i + 1, ["--kill", "2@5"], place)));
    // The worker cuts its host's link inside the host (eth0 down): bring it back for the next run.
    const relink = () =>
      new Promise<void>((resolve) => cluster.exec(1, ["ip", "link", "set", "dev", "eth0", "up"], { stdio: "ignore" }).on("close", () => resolve()))
        .then(() => cluster.restoreLink(1));
    await measure("tfjs, 2 emulated hosts x 2: the second host's link cut (--timeout 3) -> training at 2", (i) => job(tf(i + 1, ["--cut", "2@5"], place)).finally(relink));
    const [h1, h2] = cluster.hosts.map((h) => h.name);
    const at = ["--launch-agent", cluster.launchAgent, "--rendezvous-addr", cluster.rootAddr];
    await measure("torch, 2 emulated hosts: 2 ranks on the first, a slot offered on the second -> training at 3 (newcomer's start included)", (i) =>
      joining(i, `${h1}:2`, `${h1}:2,${h2}:1`, 3, at));
  } finally {
    await cluster.down();
  }
}
