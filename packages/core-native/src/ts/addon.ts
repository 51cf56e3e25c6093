// Finds the compiled core (unicc_core.node) the way native packages with prebuilt binaries do:
// this package's own build first (a checkout, or a build from source), then the platform package
// npm installed as an optional dependency (@unicc/core-linux-x64-gnu or -arm64-gnu on Linux with glibc), and
// otherwise an error that lists what was tried and how to get either.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export type AddonKind = "local build" | "prebuilt package";

export interface FoundAddon {
  exports: unknown;
  kind: AddonKind;
  path: string;
}

/** `@unicc/core-<os>-<cpu>[-gnu|-musl]`: the name of the package that would carry this machine's prebuilt core. */
export function platformPackage(): string {
  return `@unicc/core-${process.platform}-${process.arch}${libcSuffix()}`;
}

function libcSuffix(): string {
  if (process.platform !== "linux") return "";
  // glibc's version is in Node's diagnostic report only where Node runs on glibc.
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ? "-gnu" : "-musl";
}

export function loadCoreAddon(): FoundAddon {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve("@unicc/core/package.json")); // this package, wherever it is installed
  const pkg = platformPackage();
  const candidates: [AddonKind, string, () => string][] = [
    ["local build", root, () => join(root, "build", "Release", "unicc_core.node")],
    ["prebuilt package", pkg, () => require.resolve(`${pkg}/unicc_core.node`)],
  ];
  const tried: string[] = [];
  for (const [kind, what, locate] of candidates) {
    let path: string;
    try {
      path = locate();
    } catch {
      tried.push(`${kind} ${what}: not installed`);
      continue;
    }
    if (!existsSync(path)) {
      tried.push(`${kind}: no ${path}`);
      continue;
    }
    try {
      return { exports: require(path), kind, path };
    } catch (e) {
      tried.push(`${kind} ${path}: does not load here: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  throw new Error(missingMessage(root, pkg, tried, require));
}

function missingMessage(root: string, pkg: string, tried: string[], require: NodeJS.Require): string {
  const published = Object.keys((require(join(root, "package.json")) as { optionalDependencies?: object }).optionalDependencies ?? {});
  const prebuilt = published.includes(pkg)
    ? `install the prebuilt core: npm install ${pkg} (npm installs it with @unicc/core unless optional dependencies are left out, as --omit=optional does)`
    : `no prebuilt core is published for ${pkg.slice("@unicc/core-".length)} (there ${published.length === 1 ? "is" : "are"}: ${published.join(", ") || "none"})`;
  return [
    `unicc: the native core (unicc_core.node) for ${process.platform}-${process.arch} was not found. Tried:`,
    ...tried.map((t) => `  - ${t}`),
    "Either:",
    `  - ${prebuilt},`,
    `  - or build it from source (needs CMake 3.18+, a C++17 compiler and make): cd ${root} && npm install --no-save cmake-js node-addon-api && npx cmake-js compile --release`,
  ].join("\n");
}
