// dist/bench-cluster.js: the emulated hosts of tests/cluster/ for benchmarks that run outside
// this package's CLI (@unicc/torch's bench/run.mjs --emulated-hosts), so that they bring the
// network up and down exactly as `unicc bench engine` does. Only a checkout has tests/cluster/.
export { netnsUnavailable, up, type Cluster, type ClusterOptions } from "../../../../../tests/cluster/cluster.js";
