// `unicc doctor`: what unicc finds on this machine and what is wrong, in one screen. Nothing here
// is fatal but a core that does not load (exit code 1): a missing framework is a line, not an error.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statfsSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { delimiter, join } from "node:path";

import { newCommand, parseCommand, parseOrExit } from "./cli-options.js";
import { loadedAddon } from "./native.js";

const MIN_SHM_BYTES = 1 << 30; // below this, shared-memory slabs of a large model's gradients run out
const FRAMEWORKS = ["torch", "tensorflow", "mxnet", "caffe"];

interface Report {
  lines: string[];
  problems: string[];
}

const USAGE = `usage: unicc doctor

  What unicc finds here, on one screen: Node, which core loaded, CPU features, each Python
  framework and adapter, the /dev/shm size, network interfaces, CUDA. Exits 1 only when the core
  does not load.
  -h, --help  this text
`;

/** `unicc doctor ARGS`: no options but --help. */
export function doctorCommand(argv: string[]): number {
  const ok = parseOrExit("unicc doctor", USAGE, () => (parseCommand(newCommand("unicc doctor"), argv).opts.help ? "help" : true));
  return ok === true ? runDoctor() : ok;
}

export function runDoctor(out: NodeJS.WritableStream = process.stdout): number {
  const r: Report = { lines: ["unicc doctor"], problems: [] };
  checkNode(r);
  const core = checkCore(r);
  checkCpu(r);
  checkPython(r);
  checkShm(r);
  checkNetwork(r);
  checkCuda(r);
  r.lines.push(r.problems.length ? `problems (${r.problems.length}):` : "problems: none");
  for (const p of r.problems) r.lines.push(`  - ${p}`);
  out.write(r.lines.join("\n") + "\n");
  return core ? 0 : 1;
}

function row(r: Report, what: string, text: string): void {
  r.lines.push(`${what.padEnd(10)}${text}`);
}

function checkNode(r: Report): void {
  row(r, "node", `${process.version} (${process.execPath})`);
}

function checkCore(r: Report): boolean {
  try {
    const { kind, path } = loadedAddon();
    row(r, "core", `${kind}: ${path}`);
    return true;
  } catch (e) {
    row(r, "core", "not loaded (see problems)");
    r.problems.push((e as Error).message.replace(/\n/g, "\n    "));
    return false;
  }
}

/** The CPU features the core picks its kernels by at run time (reduce.cc, wire16.cc). */
function checkCpu(r: Report): void {
  if (process.arch !== "x64") return row(r, "cpu", `${process.arch}: portable kernels`);
  const flags = new Set((/^flags\s*:(.*)$/m.exec(readText("/proc/cpuinfo")) ?? ["", ""])[1].trim().split(/\s+/));
  const has = (f: string) => (flags.has(f) ? `${f} yes` : `${f} no`);
  const kernels = flags.has("avx2") ? (flags.has("f16c") ? "AVX2 sums, F16C fp16 coding" : "AVX2 sums, portable fp16 coding") : "portable kernels";
  row(r, "cpu", `${has("avx2")}, ${has("f16c")}: ${kernels}`);
}

const PROBE = `
import importlib, importlib.util, json, sys
out = {"python": sys.executable, "version": sys.version.split()[0], "frameworks": {}, "adapters": {}}
def version(name):
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:
        pass
    try:
        return getattr(importlib.import_module(name), "__version__", "unknown version")
    except Exception as e:
        return "present, import fails: %s" % (str(e).splitlines() or [type(e).__name__])[0]
for name in sys.argv[1:]:
    out["frameworks"][name] = version(name) if importlib.util.find_spec(name) else None
    try:
        out["adapters"][name] = bool(importlib.util.find_spec("unicc." + name))
    except Exception:
        out["adapters"][name] = False
print(json.dumps(out))
`;

/** The interpreter `unicc` was started from (the pip-installed command says), else python3 on PATH. */
function checkPython(r: Report): void {
  const python = process.env.UNICC_PYTHON || onPath("python3");
  if (!python) {
    row(r, "python", "no python3 on PATH (only needed for the Python frameworks; UNICC_PYTHON names another)");
    return;
  }
  const res = spawnSync(python, ["-c", PROBE, ...FRAMEWORKS], { encoding: "utf8", timeout: 60_000 });
  let found: { python: string; version: string; frameworks: Record<string, string | null>; adapters: Record<string, boolean> };
  try {
    found = JSON.parse(res.stdout);
  } catch {
    row(r, "python", `${python}: does not run (${res.error?.message ?? res.stderr.trim().split("\n").pop()})`);
    r.problems.push(`${python} does not run; set UNICC_PYTHON to the interpreter your training uses`);
    return;
  }
  row(r, "python", `${found.version} (${found.python})`);
  for (const name of FRAMEWORKS) {
    const v = found.frameworks[name];
    const adapter = found.adapters[name] ? `unicc.${name} installed` : `unicc.${name} not installed`;
    const unused = v === null && found.adapters[name];
    r.lines.push(`  ${name.padEnd(12)}${v === null ? `not found${unused ? ` (unicc.${name} is installed)` : ""}` : `${v}, ${adapter}`}`);
    if (v !== null && !found.adapters[name]) r.problems.push(`${name} is here but unicc.${name} is not: pip install unicc-${name}`);
    if (unused) r.problems.push(`unicc.${name} is installed but ${name} is not importable here: install ${name} into ${found.python}`);
  }
}

function checkShm(r: Report): void {
  try {
    const s = statfsSync("/dev/shm");
    const [free, total] = [s.bavail * s.bsize, s.blocks * s.bsize];
    row(r, "/dev/shm", `${mib(free)} free of ${mib(total)}`);
    if (total < MIN_SHM_BYTES)
      r.problems.push(`/dev/shm holds ${mib(total)}: ranks on one host exchange tensors through it; give it 1 GiB or more (docker run --shm-size=2g)`);
  } catch (e) {
    row(r, "/dev/shm", `missing (${(e as Error).message})`);
    r.problems.push("no /dev/shm: ranks on one host need it (a tmpfs) for shared memory");
  }
}

function checkNetwork(r: Report): void {
  const ifs = Object.entries(networkInterfaces()).map(
    ([name, addrs]) => `${name} ${(addrs ?? []).map((a) => a.address).join(" ")}`,
  );
  row(r, "network", ifs.join("; ") || "no interfaces");
  if (!Object.values(networkInterfaces()).some((a) => a?.some((x) => !x.internal)))
    r.problems.push("no network interface but loopback: jobs can use this host only");
}

function checkCuda(r: Report): void {
  const nvcc = onPath("nvcc") ?? (existsSync("/usr/local/cuda/bin/nvcc") ? "/usr/local/cuda/bin/nvcc" : undefined);
  const nvccVersion = nvcc ? (/release ([\d.]+)/.exec(spawnSync(nvcc, ["--version"], { encoding: "utf8", timeout: 10_000 }).stdout ?? "")?.[1] ?? "unknown") : undefined;
  const driver = /Kernel Module\s+([\d.]+)/.exec(readText("/proc/driver/nvidia/version"))?.[1];
  row(r, "cuda", `driver ${driver ?? "not found"}; nvcc ${nvcc ? `${nvccVersion} (${nvcc})` : "not found"}`);
}

function onPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  return undefined;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function mib(bytes: number): string {
  return bytes >= 1 << 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}
