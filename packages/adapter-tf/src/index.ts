export { DistributedOptimizer, type DistributedOptimizerOptions, type ExchangeStats } from "./optimizer.js";
export { broadcastWeights, broadcastOptimizerState, type HasWeights } from "./broadcast.js";
export { MetricAverageCallback, averageMetrics } from "./callback.js";
export { shard, type Placement, type ShardOptions } from "./shard.js";
export { checkLayout, type Comm, type Slot } from "./layout.js";
export { ElasticState } from "./elastic.js";
