// bench/run.mjs's refusals, which come before any job or venv: bad options, and --emulated-hosts
// where the process cannot make network namespaces (an unprivileged user). Timings are the
// benchmark's business, not a test's.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const RUN = fileURLToPath(new URL("../bench/run.mjs", import.meta.url));
const bench = (args: string[], asUser?: number) =>
  spawnSync(asUser === undefined ? process.execPath : "setpriv", [
    ...(asUser === undefined ? [] : [`--reuid=${asUser}`, `--regid=${asUser}`, "--clear-groups", process.execPath]),
    RUN,
    ...args,
  ], { encoding: "utf8", timeout: 30_000 });
const root = process.getuid?.() === 0;
const hasSetpriv = spawnSync("setpriv", ["--version"]).status === 0;

describe("torch bench runner", () => {
  it("rejects bad options", () => {
    expect(bench(["--emulated-hosts", "1"])).toMatchObject({ status: 2, stderr: expect.stringMatching(/--emulated-hosts needs a whole number of at least 2, got '1'/) });
    expect(bench(["-np", "x"])).toMatchObject({ status: 2, stderr: expect.stringMatching(/-np needs a whole number of at least 2, got 'x'/) });
    expect(bench(["--rounds", "0"])).toMatchObject({ status: 2, stderr: expect.stringMatching(/--rounds needs a whole number of at least 1, got '0'/) });
    expect(bench(["--frobnicate"])).toMatchObject({ status: 2, stderr: expect.stringMatching(/unknown option '--frobnicate'/) });
    expect(bench(["--help"])).toMatchObject({ status: 0, stdout: expect.stringMatching(/--emulated-hosts H/) });
  });

  it.skipIf(root && !hasSetpriv)("says why it cannot emulate hosts without root, and exits 1", () => {
    // As root, drop to nobody (65534) for this run; otherwise we are unprivileged already.
    const r = bench(["--emulated-hosts", "2"], root ? 65534 : undefined);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/--emulated-hosts needs network namespaces .*: needs root/);
  });
});
