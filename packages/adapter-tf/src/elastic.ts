import { dispose, tensor, type DataType, type Optimizer, type Tensor } from "@tensorflow/tfjs-core";

import { HostsChanged, type ElasticState as CoreElasticState, type ElasticWorld } from "@unicc/core";

import { broadcastOptimizerState, broadcastWeights, type HasWeights } from "./broadcast.js";

interface Saved {
  data: Float32Array | Int32Array | Uint8Array;
  shape: number[];
  dtype: DataType;
  name: string;
}

function copyOut(name: string, t: Tensor): Saved {
  return { name, shape: t.shape, dtype: t.dtype, data: (t.dataSync() as Float32Array | Int32Array | Uint8Array).slice() };
}

const copyIn = (s: Saved): Tensor => tensor(s.data.slice(), s.shape, s.dtype);

/**
 * What an elastic tfjs job keeps across re-formings (`runElastic` from @unicc/core): a model's
 * weights, an optimizer's state (`getWeights()`) and plain counters (`state.counters.epoch`...).
 * commit() keeps a copy in memory; restore() puts it back; sync() makes every rank's rank 0's.
 * Give the DistributedOptimizer the same ElasticWorld, so it follows the world's new size.
 */
export class ElasticState<C extends Record<string, number>> implements CoreElasticState {
  private saved: { weights: Saved[]; optimizer: Saved[]; counters: C } | undefined;

  constructor(
    readonly world: ElasticWorld,
    readonly parts: { model?: HasWeights; optimizer?: Optimizer },
    public counters: C,
  ) {}

  /** Keeps the current state in memory. */
  async save(): Promise<void> {
    const weights = (this.parts.model?.getWeights() ?? []).map((t, i) => copyOut(`w${i}`, t));
    const opt = (await this.parts.optimizer?.getWeights()) ?? [];
    this.saved = { weights, optimizer: opt.map((w) => copyOut(w.name, w.tensor)), counters: { ...this.counters } };
    // getWeights() makes a fresh iteration scalar on each call (broadcast.ts)
    dispose(opt.filter((w) => !(w.tensor as { assign?: unknown }).assign).map((w) => w.tensor));
  }

  /** save(), then (collective: every rank at the same step) throws HostsChanged if the launcher re-forms the world. */
  async commit(): Promise<void> {
    await this.save();
    if (await this.world.membershipChangedAnywhere()) throw new HostsChanged();
  }

  /** Back to the last commit (the state made first counts as one). */
  async restore(): Promise<void> {
    if (!this.saved) return this.save();
    const { weights, optimizer, counters } = this.saved;
    if (this.parts.model && weights.length) {
      const ts = weights.map(copyIn);
      this.parts.model.setWeights(ts);
      dispose(ts);
    }
    if (this.parts.optimizer && optimizer.length) {
      const ts = optimizer.map((s) => ({ name: s.name, tensor: copyIn(s) }));
      await this.parts.optimizer.setWeights(ts);
      dispose(ts.map((w) => w.tensor));
    }
    this.counters = { ...counters };
  }

  /** Collective: every rank's state becomes rank 0's last commit (newcomers get it so). */
  async sync(world: ElasticWorld): Promise<void> {
    await this.restore();
    if (world.size > 1) {
      if (this.parts.model) await broadcastWeights(this.parts.model, world);
      if (this.parts.optimizer) await broadcastOptimizerState(this.parts.optimizer, world);
      const keys = Object.keys(this.counters).sort();
      const values = Float64Array.from(keys, (k) => this.counters[k]);
      await world.broadcast(values);
      this.counters = Object.fromEntries(keys.map((k, i) => [k, values[i]])) as C;
    }
    await this.save();
  }
}
