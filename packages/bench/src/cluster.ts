// dist/cluster.js: the emulated hosts of tests/cluster/ for the adapters' benchmarks
// (@unicc/torch's and @unicc/mxnet's bench/run.mjs --emulated-hosts), so that they bring the
// network up and down exactly as `unicc-bench engine` does.
export { netnsUnavailable, up, type Cluster, type ClusterOptions } from "../../../tests/cluster/cluster.js";
