// The one option parser (commander, src/ts/cli-options.ts) as `unicc run`, `unicc k8s`,
// `unicc doctor` and bridge.js use it: mpirun's -np, the user's command left alone, and bad input
// as one line naming the flag. In-process except the runs of the doctor and of bridge.js.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

import { UsageError } from "../src/ts/cli-options.js";
import { parseK8sArgs } from "../src/ts/k8s.js";
import { HelpRequested, parseRunArgs } from "../src/ts/launcher/options.js";
import { CLI } from "./run-job.js";

const BRIDGE_JS = CLI.replace(/cli\.js$/, "bridge.js");

const pick = <T>(xs: readonly T[]) => xs[Math.floor(Math.random() * xs.length)];

/** The UsageError message `parse` throws for these arguments. */
function usageError(parse: (argv: string[]) => unknown, argv: string[]): string {
  try {
    parse(argv);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  throw new Error(`no error for ${argv.join(" ")}`);
}

// Words a user's command may hold that would mean something to unicc run if it parsed them.
const USER_WORDS = ["-np", "7", "-n", "--nproc=3", "--help", "-h", "--bogus", "-H", "x:1", "--", "--timeout", "-x", "train.py"];
const userArgs = () => Array.from({ length: 1 + Math.floor(Math.random() * 8) }, () => pick(USER_WORDS));

describe("option parser", () => {
  it("-np N, -n N, --nproc N and --nproc=N all give N ranks", () => {
    const n = 1 + Math.floor(Math.random() * 64);
    for (const flags of [["-np", `${n}`], ["-n", `${n}`], ["--nproc", `${n}`], [`--nproc=${n}`]])
      expect(parseRunArgs([...flags, "node"]).hosts, flags.join(" ")).toEqual([{ name: "localhost", slots: n }]);
  });

  it("never parses the user's command: after --, or from its first word on", () => {
    for (let trial = 0; trial < 20; trial++) {
      const user = userArgs();
      expect(parseRunArgs(["-np", "2", "--", "python", ...user]).command).toEqual(["python", ...user]);
      expect(parseRunArgs(["-np", "2", "python", ...user]).command).toEqual(["python", ...user]);
      expect(parseK8sArgs(["--name", "j", "--image", "i", "--nodes", "1", "--nproc-per-node", "1", "--", "python", ...user])).toMatchObject({
        command: ["python", ...user],
      });
    }
    // After --, even a first word that looks like a flag is the command's.
    expect(parseRunArgs(["--", "-np", "3"]).command).toEqual(["-np", "3"]);
    // A value that looks like a flag is a value, and -np after it is still unicc run's.
    const o = parseRunArgs(["--launch-agent", "-np", "-np", "3", "node"]);
    expect([o.launchAgent, o.np, o.command]).toEqual(["-np", 3, ["node"]]);
  });

  it("rejects an unknown flag, a missing value and a bad number in one line naming the flag", () => {
    for (const [argv, want] of [
      [["--bogus", "node"], /^unknown option '--bogus'/],
      [["-x", "node"], /^unknown option '-x'/],
      [["-np"], /^-np needs a value$/],
      [["-np", "2", "--hostfile"], /^--hostfile needs a value$/],
      [["-np", "2", "-H"], /^-H needs a value$/],
      [["-np", "-3", "node"], /^-np needs a whole number of at least 1, got '-3'$/],
      [["--nproc=two", "node"], /^-np needs a whole number of at least 1, got 'two'$/],
      [["--timeout=", "node"], /^--timeout needs a whole number of at least 1, got ''$/],
    ] as const) {
      const message = usageError(parseRunArgs, [...argv]);
      expect(message, argv.join(" ")).toMatch(want);
      expect(message).not.toContain("\n");
    }
    expect(usageError(parseK8sArgs, ["--kind", "pod"])).toBe("--kind takes jobset or pytorchjob, got 'pod'");
    expect(usageError(parseK8sArgs, ["--nodes"])).toBe("--nodes needs a value");
  });

  it("--help wins over a missing command", () => {
    expect(() => parseRunArgs(["--help"])).toThrow(HelpRequested);
    expect(() => parseRunArgs(["-np", "2", "-h", "node"])).toThrow(HelpRequested);
  });

  it("unicc doctor takes --help and nothing else", () => {
    const doctor = (args: string[]) => spawnSync(process.execPath, [CLI, "doctor", ...args], { encoding: "utf8" });
    expect(doctor(["--help"])).toMatchObject({ status: 0, stdout: expect.stringMatching(/^usage: unicc doctor\n/) });
    expect(doctor(["--bogus"])).toMatchObject({ status: 2, stderr: "unicc doctor: unknown option '--bogus' (see unicc doctor --help)\n" });
    expect(doctor(["extra"])).toMatchObject({ status: 2, stderr: expect.stringMatching(/^unicc doctor: too many arguments.*\n$/) });
  });

  it("bridge.js (started by the Python client and by unicc run --bridge) parses its flags the same way", () => {
    const bridge = (args: string[]) => spawnSync(process.execPath, [BRIDGE_JS, ...args], { encoding: "utf8", timeout: 10000 });
    expect(bridge(["--help"])).toMatchObject({ status: 0, stdout: expect.stringMatching(/^usage: node bridge.js --socket/) });
    for (const [args, want] of [
      [[], "--socket is required"],
      [["--socket"], "--socket needs a value"],
      [["--socket", "/tmp/x/s", "--connect-timeout-ms", "soon"], "--connect-timeout-ms needs a whole number of at least 1, got 'soon'"],
      [["--socket", "/tmp/x/s", "--bogus"], "unknown option '--bogus'"],
    ] as const)
      expect(bridge([...args]), args.join(" ")).toMatchObject({ status: 2, stderr: `bridge.js: ${want} (see bridge.js --help)\n` });
  });
});
