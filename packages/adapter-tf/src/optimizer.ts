import {
  dispose,
  engine,
  Optimizer,
  serialization,
  tensor,
  tidy,
  type NamedTensorMap,
  type Scalar,
  type Tensor,
  type Variable,
} from "@tensorflow/tfjs-core";

import type { Compression } from "@unicc/core";

import { checkLayout, elementCount, type Comm, type Slot } from "./layout.js";

/** What optimizers' getWeights() lists (tfjs-core does not export the type itself). */
export type NamedTensor = Awaited<ReturnType<Optimizer["getWeights"]>>[number];

/** Where the time of the gradient exchange went, summed since the optimizer was made. */
export interface ExchangeStats {
  /** Steps whose gradients were exchanged. */
  steps: number;
  /** Milliseconds spent in the blocking allreduce (waiting for slower ranks included). */
  allreduceMs: number;
  /** Milliseconds spent copying gradients out of their tensors. */
  packMs: number;
  /** float32 elements exchanged in the last step. */
  elements: number;
}

export interface DistributedOptimizerOptions {
  /** How gradients cross hosts: "fp16" or "bf16" halve the bytes (default: UNICC_COMPRESSION, else exact). */
  compression?: Compression;
}

// Names the engine knows each optimizer's gradients by; optimizers made in the same order on
// every rank get the same prefix.
let optimizersMade = 0;

/**
 * Wraps any tf.Optimizer so that gradients are averaged across the ranks of `comm` before the
 * wrapped optimizer applies them: every rank then takes the same step, the one a single process
 * would take on the union of the ranks' batches.
 *
 * Each step hands every gradient to the engine as a named request (fused there, optionally sent
 * in 16 bits), plus one array of presence flags, and blocks until all are reduced (tfjs calls
 * `minimize` and `applyGradients` synchronously, inside `fit`'s tidy). Gradients are named by
 * position and shape, not by variable name, because variable names carry per-process counters.
 * A variable without a gradient on this rank sends zeros; one that has a gradient on no rank is
 * skipped, as tfjs does.
 */
export class DistributedOptimizer extends Optimizer {
  readonly stats: ExchangeStats = { steps: 0, allreduceMs: 0, packMs: 0, elements: 0 };
  private verifiedLayout: string | undefined;
  private readonly prefix = `unicc-tf-opt${optimizersMade++}`;

  constructor(
    readonly inner: Optimizer,
    readonly comm: Comm,
    readonly options: DistributedOptimizerOptions = {},
  ) {
    super();
  }

  // tfjs-core recognises optimizers by shape, which subclasses inherit: any optimizer would pass
  // `instanceof DistributedOptimizer`. Restore the prototype-chain check for this class.
  static override [Symbol.hasInstance](x: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, x);
  }

  /** Saved models name the wrapped optimizer, so they load without unicc (see README). */
  override getClassName(): string {
    return this.inner.getClassName();
  }

  getConfig(): serialization.ConfigDict {
    return this.inner.getConfig();
  }

  override get iterations(): number {
    return this.inner.iterations;
  }

  override minimize(f: () => Scalar, returnCost = false, varList?: Variable[]): Scalar | null {
    if (varList != null) return super.minimize(f, returnCost, varList);
    // Without a list tfjs passes only the variables that got a gradient, which can differ between
    // ranks. Every trainable variable (the same list on every rank) goes into the exchange instead,
    // and those that got a gradient on no rank are left out after it, as tfjs would leave them.
    const vars = Object.values(engine().registeredVariables).filter((v) => v.trainable);
    const { value, grads } = this.computeGradients(f, vars);
    this.exchange(vars.map((v) => ({ name: v.name, tensor: grads[v.name] })), true);
    dispose(grads);
    if (returnCost) return value;
    value.dispose();
    return null;
  }

  override computeGradients(f: () => Scalar, varList?: Variable[]) {
    return this.inner.computeGradients(f, varList);
  }

  /**
   * Averages the gradients across ranks, then has the wrapped optimizer apply them. An array is
   * matched by position (entries without a tensor send zeros); a map by key order, so every rank
   * must have the same keys: prefer `minimize`, which handles variables without a gradient.
   */
  applyGradients(variableGradients: NamedTensorMap | NamedTensor[]): void {
    const entries = Array.isArray(variableGradients)
      ? variableGradients
      : Object.keys(variableGradients).map((name) => ({ name, tensor: variableGradients[name] }));
    this.exchange(entries, false);
  }

  /** `dropAbsent`: leave out of the wrapped optimizer's list the variables no rank has a gradient for. */
  private exchange(entries: readonly { name: string; tensor: Tensor | null | undefined }[], dropAbsent: boolean): void {
    const slots: Slot[] = entries.map(({ name, tensor }) => {
      const shape = tensor?.shape ?? engine().registeredVariables[name]?.shape;
      if (shape == null) throw new Error(`unicc/tf: "${name}" has no gradient and is not a registered variable, so its size is unknown`);
      return { name, shape };
    });
    const layout = slots.map((s) => s.shape.join("x")).join(",");
    if (layout !== this.verifiedLayout) {
      checkLayout(this.comm, slots, "the variables to update");
      this.verifiedLayout = layout;
    }

    const t0 = performance.now();
    // Fresh arrays each step: the cpu backend keeps the arrays it is given as tensor storage.
    const grads = entries.map(({ tensor }, i) =>
      tensor != null ? Float32Array.from(tensor.dataSync() as Float32Array) : new Float32Array(elementCount(slots[i].shape)),
    );
    const present = Float32Array.from(entries, ({ tensor }) => (tensor != null ? 1 : 0));
    const t1 = performance.now();
    if (this.comm.size > 1) {
      const named = grads.map((buf, i) => ({ name: `${this.prefix}/${i}/${slots[i].shape.join("x")}`, buf }));
      named.push({ name: `${this.prefix}/present/${entries.length}`, buf: present });
      this.comm.allreduceNamedSync(named, { op: "average", compression: this.options.compression });
    }
    const t2 = performance.now();

    tidy(() => {
      const averaged = slots.map(({ name, shape }, i) => {
        const grad = present[i] > 0 ? tensor(grads[i], shape as number[], "float32") : null;
        return { name, tensor: grad as Tensor };
      });
      this.inner.applyGradients(dropAbsent ? averaged.filter((g) => g.tensor != null) : averaged);
    });
    this.stats.steps++;
    this.stats.allreduceMs += t2 - t1;
    this.stats.packMs += t1 - t0;
    this.stats.elements = grads.reduce((n, g) => n + g.length, present.length);
  }

  override dispose(): void {
    this.inner.dispose();
  }

  override getWeights(): Promise<NamedTensor[]> {
    return this.inner.getWeights();
  }

  override setWeights(weightValues: NamedTensor[]): Promise<void> {
    return this.inner.setWeights(weightValues);
  }
}
