// `npm pack` of a platform package (packages/core-<os>-<cpu>-<libc>) runs this as its prepack:
// copies this checkout's build of the core into it, after checking that the build is for the
// platform the package names (an ELF for the right machine), so a tarball never carries another's binary.
// The build for this machine's CPU is cmake-js's (build/Release); another CPU's is a cross build in
// build-<cpu>/Release (build-arm64: see ../core-linux-arm64-gnu/README.md).
import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ELF_MACHINE = { x64: 62, arm64: 183 }; // e_machine: EM_X86_64, EM_AARCH64

const dir = resolve(process.argv[2] ?? ".");
const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
const cpu = pkg.cpu[0];
const buildDir = cpu === process.arch ? "build" : `build-${cpu}`;
// The addon, and the client lane's library that the Python client loads beside it.
for (const file of ["unicc_core.node", "libunicc_client_lane.so"]) {
  const built = fileURLToPath(new URL(`../${buildDir}/Release/${file}`, import.meta.url));
  if (!existsSync(built)) {
    const how = cpu === process.arch ? "npm run build -w @unicc/core" : `see packages/core-linux-${cpu}-gnu/README.md`;
    console.error(`${pkg.name}: no ${built}; build the core first (${how})`);
    process.exit(1);
  }
  const head = readFileSync(built).subarray(0, 20);
  const want = ELF_MACHINE[cpu];
  if (head.readUInt32BE(0) !== 0x7f454c46 || head.readUInt16LE(18) !== want || pkg.os[0] !== process.platform) {
    console.error(`${pkg.name}: ${built} is not a ${pkg.os[0]}-${cpu} build (ELF machine ${head.readUInt16LE(18)}, want ${want})`);
    process.exit(1);
  }
  copyFileSync(built, join(dir, file));
}
