// `unicc k8s`: the manifests of a job on Kubernetes. One pod per node runs `unicc run --nnodes`
// (torchrun's shape: one launcher per node, node 0 hosts the store), so a pod's ranks share its
// memory and only the slices of the hierarchical allreduce cross pods. The job's token lives in a
// Secret that every pod reads into UNICC_JOB_TOKEN; a headless Service gives node 0 its name.
import { randomBytes } from "node:crypto";

import { newLauncherCommand, parseCommand, parseOrExit, UsageError, wholeNumber } from "./cli-options.js";

export type K8sKind = "jobset" | "pytorchjob";

export interface K8sJob {
  name: string;
  image: string;
  nodes: number;
  procsPerNode: number;
  kind: K8sKind;
  port: number;
  command: string[];
}

export const K8S_USAGE = `usage: unicc k8s --name NAME --image IMAGE --nodes N --nproc-per-node M [options] -- <command...>

  Prints the manifests of a job (kubectl apply -f -): a Secret with the job token, a headless
  Service, and a JobSet (default) or a Kubeflow PyTorchJob with one pod per node, each running
  \`unicc run --nnodes N --node-rank <its index> -np M\`.
  --kind jobset|pytorchjob   what runs the pods (default jobset)
  --port P                   where node 0's launcher hosts the store (default 29400; P+1 is
                             MASTER_PORT for torch code)
`;

const NAME = /^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$/;

export function parseK8sArgs(argv: string[]): K8sJob | "help" {
  const o: Partial<K8sJob> = { kind: "jobset", port: 29400 };
  const cmd = newLauncherCommand("unicc k8s")
    .option("--name <NAME>", "", (v) => void (o.name = v))
    .option("--image <IMAGE>", "", (v) => void (o.image = v))
    .option("--nodes <N>", "", (v) => void (o.nodes = wholeNumber("--nodes", v, 1)))
    .option("--nproc-per-node <M>", "", (v) => void (o.procsPerNode = wholeNumber("--nproc-per-node", v, 1)))
    .option("--port <P>", "", (v) => void (o.port = wholeNumber("--port", v, 1)))
    .option("--kind <KIND>", "", (k) => {
      if (k !== "jobset" && k !== "pytorchjob") throw new UsageError(`--kind takes jobset or pytorchjob, got '${k}'`);
      o.kind = k;
    });
  const { opts, operands } = parseCommand(cmd, argv);
  if (opts.help) return "help";
  o.command = operands;
  for (const need of ["name", "image", "nodes", "procsPerNode"] as const)
    if (o[need] === undefined) throw new UsageError(`--${need === "procsPerNode" ? "nproc-per-node" : need} is required`);
  if (!NAME.test(o.name!)) throw new UsageError(`--name '${o.name}' must be a DNS label: a-z, 0-9 and '-', at most 42 characters`);
  if (o.port! > 65534) throw new UsageError("--port must be below 65535");
  if (!o.command.length) throw new UsageError("no command to run");
  return o as K8sJob;
}

/** Where node 0's pod answers: its stable DNS name under the headless Service. */
function masterHost(job: K8sJob): string {
  return job.kind === "jobset" ? `${job.name}-node-0-0.${job.name}` : `${job.name}-master-0.${job.name}`;
}

function container(job: K8sJob, nodeRankVar: string): object {
  const run = `exec unicc run --nnodes ${job.nodes} --node-rank "$${nodeRankVar}" -np ${job.procsPerNode} ` +
    `--master-addr ${masterHost(job)} --master-port ${job.port} -- "$@"`;
  return {
    name: "unicc",
    image: job.image,
    command: ["sh", "-c", run, "unicc", ...job.command],
    env: [
      { name: "UNICC_JOB_ID", value: job.name },
      { name: "UNICC_JOB_TOKEN", valueFrom: { secretKeyRef: { name: `${job.name}-token`, key: "token" } } },
    ],
    ports: [{ name: "unicc-store", containerPort: job.port, protocol: "TCP" }],
    // Ranks of a pod share memory through /dev/shm, which is 64 MiB by default in a container.
    volumeMounts: [{ name: "dshm", mountPath: "/dev/shm" }],
  };
}

const podBase = (job: K8sJob) => ({
  subdomain: job.name,
  restartPolicy: "Never",
  volumes: [{ name: "dshm", emptyDir: { medium: "Memory" } }],
});

function jobSet(job: K8sJob): object {
  return {
    apiVersion: "jobset.x-k8s.io/v1alpha2",
    kind: "JobSet",
    metadata: { name: job.name },
    spec: {
      network: { enableDNSHostnames: true, subdomain: job.name },
      failurePolicy: { maxRestarts: 0 },
      replicatedJobs: [{
        name: "node",
        replicas: 1,
        template: {
          spec: {
            parallelism: job.nodes,
            completions: job.nodes,
            completionMode: "Indexed",
            backoffLimit: 0,
            template: { metadata: { labels: { "unicc-job": job.name } }, spec: { ...podBase(job), containers: [container(job, "JOB_COMPLETION_INDEX")] } },
          },
        },
      }],
    },
  };
}

function pyTorchJob(job: K8sJob): object {
  // The operator numbers the pods in RANK (master 0, workers 1..); WORLD_SIZE is the pod count.
  const replica = (replicas: number) => ({
    replicas,
    restartPolicy: "Never",
    template: { metadata: { labels: { "unicc-job": job.name } }, spec: { ...podBase(job), containers: [{ ...container(job, "RANK"), name: "pytorch" }] } },
  });
  return {
    apiVersion: "kubeflow.org/v1",
    kind: "PyTorchJob",
    metadata: { name: job.name },
    spec: {
      runPolicy: { backoffLimit: 0, cleanPodPolicy: "All" },
      pytorchReplicaSpecs: { Master: replica(1), ...(job.nodes > 1 ? { Worker: replica(job.nodes - 1) } : {}) },
    },
  };
}

/** The job's objects, in the order to apply them. */
export function k8sManifests(job: K8sJob, token = randomBytes(32).toString("hex")): object[] {
  return [
    { apiVersion: "v1", kind: "Secret", metadata: { name: `${job.name}-token` }, type: "Opaque", stringData: { token } },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: job.name },
      spec: { clusterIP: "None", selector: { "unicc-job": job.name }, ports: [{ name: "unicc-store", port: job.port }] },
    },
    job.kind === "jobset" ? jobSet(job) : pyTorchJob(job),
  ];
}

/** YAML for JSON-shaped data: strings double-quoted (JSON's escapes are YAML's), so nothing is read back differently. */
export function toYaml(value: unknown, indent = ""): string {
  if (Array.isArray(value))
    return value.length ? value.map((v) => `${indent}- ${toYaml(v, `${indent}  `).trimStart()}`).join("\n") : `${indent}[]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    if (!entries.length) return `${indent}{}`;
    return entries.map(([k, v]) => {
      const nested = v !== null && typeof v === "object" && (Array.isArray(v) ? v.length : Object.keys(v).length);
      return nested ? `${indent}${k}:\n${toYaml(v, `${indent}  `)}` : `${indent}${k}: ${toYaml(v).trimStart()}`;
    }).join("\n");
  }
  return `${indent}${JSON.stringify(value)}`;
}

export function runK8s(argv: string[]): number {
  const job = parseOrExit("unicc k8s", K8S_USAGE, () => parseK8sArgs(argv));
  if (typeof job === "number") return job;
  process.stdout.write(k8sManifests(job).map((d) => `---\n${toYaml(d)}\n`).join(""));
  return 0;
}
