export { init, World, UniccError, type AllreduceOptions, type CommArray, type ReduceOp, type InitOptions } from "./world.js";
export { readEnv, DEFAULT_TIMEOUT_S, type Compression, type RankEnv } from "./env.js";
export { StoreClient, StoreServer, type RendezvousStore } from "./store/index.js";
export { ElasticWorld, HostsChanged, runElastic, type ElasticState } from "./elastic-run.js";
