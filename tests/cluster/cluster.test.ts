import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { netnsUnavailable, up, type Cluster } from "./cluster.js";

const NODE = process.execPath;
const TCP_RATE = fileURLToPath(new URL("./tcp-rate.mjs", import.meta.url));
const RATE = 2000;
const PER_FLOW = 600;

// argv: ADDR PORT. Prints "listening" once it accepts.
const ECHO_SERVER = `require("net").createServer((s) => s.on("error", () => {}).pipe(s))
  .listen(+process.argv[2], process.argv[1], () => console.log("listening"));`;
// argv: ADDR PORT TIMEOUT_MS. Prints "ok" if its message comes back in time, else why not.
const ECHO_CLIENT = `const [addr, port, ms] = process.argv.slice(1);
  const done = (what) => { console.log(what); process.exit(what === "ok" ? 0 : 1); };
  setTimeout(() => done("timeout"), +ms);
  const s = require("net").connect(+port, addr, () => s.write("ping"));
  s.on("data", (d) => String(d) === "ping" && done("ok"));
  s.on("error", (e) => done(e.code));`;

function finished(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => (stdout += d));
  child.stderr?.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function printed(child: ChildProcess, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    child.stdout?.on("data", (d) => {
      seen += d;
      if (seen.includes(text)) resolve();
    });
    child.on("close", (code) => reject(new Error(`exited (${code}) before printing "${text}"`)));
  });
}

// Even ports below the ephemeral range (32768..), so nothing in a fresh namespace holds them;
// `count` reserves consecutive even ports (see throughput()).
const freshPorts = (() => {
  let next = 20000 + Math.floor(Math.random() * 2000) * 2;
  return (count = 1) => {
    const first = next;
    next += 2 * count;
    return first;
  };
})();

const unavailable = netnsUnavailable();
if (unavailable) console.warn(`emulated cluster tests skipped: ${unavailable}`);

describe.skipIf(unavailable !== null)("emulated cluster", () => {
  let c: Cluster;
  const echoPort = freshPorts();
  const hostEchoes: ChildProcess[] = [];
  let rootEcho: net.Server;
  let rootEchoPort: number;

  // Runs the echo client on host `from` (or in the root namespace) against ADDR:PORT.
  async function echo(from: number | "root", addr: string, port: number, timeoutMs = 3000): Promise<string> {
    const argv = ["-e", ECHO_CLIENT, addr, String(port), String(timeoutMs)];
    const proc = from === "root" ? spawn(NODE, argv) : c.exec(from, [NODE, ...argv]);
    return (await finished(proc)).stdout.trim();
  }

  beforeAll(async () => {
    c = await up({ hosts: 2, rateMbit: RATE, perFlowMbit: PER_FLOW, tag: `ct${process.pid}` });
    rootEcho = net.createServer((s) => s.on("error", () => {}).pipe(s));
    await new Promise<void>((resolve) => rootEcho.listen(0, c.rootAddr, resolve));
    rootEchoPort = (rootEcho.address() as net.AddressInfo).port;
    for (let i = 0; i < c.hosts.length; i++) {
      const server = c.exec(i, [NODE, "-e", ECHO_SERVER, c.hosts[i].addr, String(echoPort)]);
      await printed(server, "listening");
      hostEchoes.push(server);
    }
  });

  afterAll(async () => {
    rootEcho?.close();
    await c?.down();
  });

  it("names hosts after their namespaces, one subnet, root at .254", () => {
    expect(c.hosts.map((h) => h.name)).toEqual([`uc-ct${process.pid}-h0`, `uc-ct${process.pid}-h1`]);
    const subnet = c.rootAddr.replace(/\.254$/, ".");
    expect(c.rootAddr).toMatch(/^10\.213\.\d+\.254$/);
    for (const h of c.hosts) expect(h.addr.startsWith(subnet)).toBe(true);
  });

  it("makes each host a whole machine: its own hostname and its own /dev/shm", async () => {
    const file = `unicc-ct-${process.pid}-mark`;
    const onHost = async (i: number, script: string) => (await finished(c.exec(i, ["sh", "-c", script]))).stdout.trim();
    expect(await onHost(0, "hostname")).toBe(c.hosts[0].hostname);
    expect(c.hosts.map((h) => h.hostname)).toEqual(c.hosts.map((h) => h.name));
    expect(await onHost(0, `echo here > /dev/shm/${file} && cat /dev/shm/${file}`)).toBe("here");
    expect(await onHost(1, `ls /dev/shm/${file} 2>/dev/null || echo absent`)).toBe("absent");
    expect(existsSync(`/dev/shm/${file}`)).toBe(false);
  });

  it("connects every host to the other hosts and to the root namespace over TCP", async () => {
    expect(await echo(0, c.hosts[1].addr, echoPort)).toBe("ok");
    expect(await echo(1, c.hosts[0].addr, echoPort)).toBe("ok");
    for (let i = 0; i < c.hosts.length; i++) {
      expect(await echo(i, c.rootAddr, rootEchoPort)).toBe("ok");
      expect(await echo("root", c.hosts[i].addr, echoPort)).toBe("ok");
    }
  });

  // Receiver-side Mbit/s of `streams` TCP streams from host 0 to host 1 over ~1.5 s. Consecutive
  // even source ports put the streams in distinct per-flow buckets (see cluster.sh), so the
  // result does not depend on how ephemeral ports happen to hash.
  async function throughput(streams: number): Promise<number> {
    const port = freshPorts();
    const args = [c.hosts[1].addr, String(port), String(streams)];
    const sink = c.exec(1, [NODE, TCP_RATE, "sink", ...args]);
    const sinkDone = finished(sink);
    await printed(sink, "listening");
    const send = await finished(c.exec(0, [NODE, TCP_RATE, "send", ...args, "1.5", String(freshPorts(streams))]));
    expect(send.stderr).toBe("");
    const { stdout } = await sinkDone;
    return JSON.parse(stdout.trim().split("\n").pop()!).mbit;
  }

  it("caps one TCP stream near the per-flow rate and lets several fill the link", async () => {
    const one = await throughput(1);
    const four = await throughput(4);
    console.log(`shaping ${RATE}/${PER_FLOW} Mbit/s: 1 stream ${one.toFixed(0)}, 4 streams ${four.toFixed(0)} Mbit/s`);
    // htb counts IP headers, so TCP payload tops out ~4% below the set rates.
    expect(one).toBeLessThan(PER_FLOW * 1.1);
    expect(one).toBeGreaterThan(PER_FLOW * 0.5);
    expect(one).toBeLessThan(RATE * 0.8);
    expect(four).toBeLessThan(RATE * 1.05);
    expect(four).toBeGreaterThan(RATE * 0.7);
  });

  it("cutLink silences a host until restoreLink", async () => {
    await c.cutLink(1);
    expect(await echo(0, c.hosts[1].addr, echoPort, 1000)).not.toBe("ok");
    expect(await echo(1, c.rootAddr, rootEchoPort, 1000)).not.toBe("ok");
    expect(await echo("root", c.hosts[1].addr, echoPort, 1000)).not.toBe("ok");
    expect(await echo(0, c.rootAddr, rootEchoPort)).toBe("ok");
    await c.restoreLink(1);
    expect(await echo(0, c.hosts[1].addr, echoPort)).toBe("ok");
    expect(await echo(1, c.rootAddr, rootEchoPort)).toBe("ok");
  });

  it("down removes every namespace and link of the tag and the hosts' processes", async () => {
    const exits = hostEchoes.map((p) => new Promise((resolve) => p.once("exit", (_code, signal) => resolve(signal))));
    await c.down();
    expect(await Promise.all(exits)).toEqual(["SIGKILL", "SIGKILL"]);
    const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    const links = execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" });
    expect(namespaces).not.toContain(`uc-${c.tag}-`);
    expect(links).not.toMatch(new RegExp(`: uc-${c.tag}[@:]`));
    await c.down(); // idempotent
  });
});
