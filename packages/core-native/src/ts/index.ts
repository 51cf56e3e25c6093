export { init, World, UniccError, type CommArray, type ReduceOp, type InitOptions } from "./world.js";
export { readEnv, DEFAULT_TIMEOUT_S, type RankEnv } from "./env.js";
export { StoreClient, StoreServer, type RendezvousStore } from "./store/index.js";
