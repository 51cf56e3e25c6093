// `unicc k8s`: no API server can run here, so the manifests are checked two ways. (1) Offline
// against the published schemas (kubernetes-validate for Secret and Service, Kubeflow's models
// for PyTorchJob and JobSet), which also must refuse a broken one. (2) The pods' own container
// command and environment, taken from the manifest, run on two emulated machines that resolve the
// pod names as the cluster's DNS would: the job must be exact.
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { expectCorrect, worker } from "../../packages/core-native/test/collectives-check.js";
import { CLI, collect } from "../../packages/core-native/test/run-job.js";
import { netnsUnavailable, up, type Cluster } from "../cluster/cluster.js";
import { k8sManifests, parseK8sArgs, type K8sJob } from "../../packages/core-native/src/ts/k8s.js";

const SETUP = fileURLToPath(new URL("./setup-k8s-venv.sh", import.meta.url));
const VALIDATE = fileURLToPath(new URL("./workers/validate_k8s.py", import.meta.url));

function manifests(args: string[]): string {
  return execFileSync(process.execPath, [CLI, "k8s", ...args], { encoding: "utf8" });
}

describe("unicc k8s", () => {
  let python: string;
  beforeAll(() => {
    python = execFileSync("bash", [SETUP], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").pop()!;
  }, 300_000);
  const validate = (yaml: string) => spawnSync(python, [VALIDATE], { input: yaml, encoding: "utf8" });
  const job = ["--name", "digits", "--image", "registry.example/unicc:1", "--nodes", "3", "--nproc-per-node", "4", "--", "python", "train.py", "--epochs", "2"];

  for (const kind of ["jobset", "pytorchjob"]) {
    it(`--kind ${kind}: Secret, headless Service and the ${kind} validate against the published schemas; a broken one does not`, () => {
      const yaml = manifests(["--kind", kind, ...job]);
      const ok = validate(yaml);
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stdout.trim().split("\n")).toEqual(["VALID Secret", "VALID Service", `VALID ${kind === "jobset" ? "JobSet" : "PyTorchJob"}`]);
      for (const broken of [yaml.replace("restartPolicy:", "restartPolcy:"), yaml.replace(/replicas: 1/, 'replicas: "one"'), yaml.replace("clusterIP:", "clusterIp:")])
        expect(validate(broken).status).not.toBe(0);
    });
  }

  it("refuses what cannot be a job, in one line with exit 2", () => {
    for (const [args, pattern] of [
      [["--image", "i", "--nodes", "1", "--nproc-per-node", "1", "--", "x"], /--name is required/],
      [["--name", "Bad_Name", "--image", "i", "--nodes", "1", "--nproc-per-node", "1", "--", "x"], /must be a DNS label/],
      [["--name", "a", "--image", "i", "--nodes", "1", "--nproc-per-node", "1", "--kind", "tfjob", "--", "x"], /--kind takes jobset or pytorchjob/],
      [["--name", "a", "--image", "i", "--nodes", "1", "--nproc-per-node", "1"], /no command to run/],
    ] as const) {
      const r = spawnSync(process.execPath, [CLI, "k8s", ...args], { encoding: "utf8" });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });
});

const skip = netnsUnavailable();
describe.skipIf(skip !== null)("the pods' command from the manifest, on 2 emulated machines", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await up({ hosts: 2, sameHostname: "pod" });
  });
  afterAll(async () => {
    await cluster?.down();
  });

  it("JobSet's container (sh -c 'exec unicc run --nnodes ...') with its env: two hosts of 2 ranks, exact", async () => {
    const spec = parseK8sArgs(["--name", "demo", "--image", "i", "--nodes", "2", "--nproc-per-node", "2", "--", ...worker]) as K8sJob;
    const [secret, , jobSet] = k8sManifests(spec) as any[];
    const pod = jobSet.spec.replicatedJobs[0].template.spec.template.spec;
    const c = pod.containers[0];
    // The cluster's DNS: node 0's pod name resolves to machine 0 on both machines.
    appendFileSync(`/run/unicc-cluster/uc-${cluster.tag}.hosts`, `${cluster.hosts[0].addr} demo-node-0-0.demo\n`);
    const env = (index: number) => ({
      ...process.env,
      PATH: `${fileURLToPath(new URL("../../node_modules/.bin", import.meta.url))}:${process.env.PATH}`,
      JOB_COMPLETION_INDEX: String(index),
      UNICC_TIMEOUT_S: "20",
      ...Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? secret.stringData[e.valueFrom.secretKeyRef.key]])),
    });
    const pods = [0, 1].map((i) => cluster.exec(i, c.command, { env: env(i), stdio: ["ignore", "pipe", "pipe"] }));
    expectCorrect(await collect(pods), 4, "hierarchical");
  });
});

