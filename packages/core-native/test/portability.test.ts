import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The core on 64-bit Arm (Graviton, Grace): cross-compiled with Debian's g++-aarch64-linux-gnu,
// its C++ unit tests run under qemu-aarch64 (the reductions and the codec checked against plain
// loops, the schedules and the executor over socket pairs).
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CXX = "aarch64-linux-gnu-g++";
const QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"];
const requireHere = createRequire(join(ROOT, "package.json"));

// Asynchronous: a build step of a minute must not block vitest's worker, whose calls to the main
// process time out after 60 s and fail the run.
function run(cmd: string, args: string[], cwd = ROOT): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"], timeout: 480_000 });
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

describe("the core on aarch64", () => {
  it("cross-compiles the core, its unit tests and the addon, and the unit tests pass under qemu-aarch64", async () => {
    const why = missing(CXX, "g++-aarch64-linux-gnu") ?? missing(QEMU[0], "qemu-user");
    if (why) throw new Error(why);
    const dir = mkdtempSync(join(tmpdir(), "unicc-aarch64-"));
    try {
      await run("cmake", ["-S", ROOT, "-B", dir, `-DCMAKE_TOOLCHAIN_FILE=${join(ROOT, "cmake/aarch64-linux-gnu.cmake")}`, "-DCMAKE_BUILD_TYPE=Release"]);
      await run("cmake", ["--build", dir, "-j2", "--target", "unicc_native_tests", "unicc_mac_kat"]);
      // The addon too: node-addon-api and Node-API's headers are the same for every CPU.
      const includes = ["-I", "src/native", "-I", requireHere("node-addon-api").include.replace(/"/g, ""),
        "-I", requireHere("node-api-headers").include_dir];
      const objects: string[] = [];
      for (const f of ["addon", "shared_memory"]) {
        const o = join(dir, `${f}.o`);
        await run(CXX, ["-std=c++17", "-O2", "-fPIC", "-DNAPI_VERSION=8", "-DNODE_ADDON_API_DISABLE_DEPRECATED", ...includes,
          "-c", `src/native/binding/${f}.cc`, "-o", o]);
        objects.push(o);
      }
      await run(CXX, ["-shared", "-o", join(dir, "unicc_core.node"), ...objects, join(dir, "libunicc_native.a"), "-lpthread", "-lrt"]);
      expect(await run("file", [join(dir, "unicc_core.node")])).toMatch(/ARM aarch64/);

      expect(await run(QEMU[0], [...QEMU.slice(1), join(dir, "unicc_mac_kat")])).toMatch(/^ok 28$/m);
      const tests = await run(QEMU[0], [...QEMU.slice(1), join(dir, "unicc_native_tests"), "--gtest_brief=1",
        "--gtest_filter=Reduce.*:Wire16.*:Executor.*:Connect.*:Schedules.RingAllreduce:Schedules.SixteenBitWireEndsEqualOnEveryRank"]);
      expect(tests).toMatch(/PASSED/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
