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

import { checkLayout, elementCount, type Comm, type Slot } from "./layout.js";

/** What optimizers' getWeights() lists (tfjs-core does not export the type itself). */
export type NamedTensor = Awaited<ReturnType<Optimizer["getWeights"]>>[number];

/** Where the time of the gradient exchange went, summed since the optimizer was made. */
export interface ExchangeStats {
  /** Steps whose gradients were exchanged. */
  steps: number;
  /** Milliseconds spent in the blocking allreduce (waiting for slower ranks included). */
  allreduceMs: number;
  /** Milliseconds spent copying gradients into the fused buffer. */
  packMs: number;
  /** float32 elements in the last step's fused buffer. */
  elements: number;
}

/**
 * Wraps any tf.Optimizer so that gradients are averaged across the ranks of `comm` before the
 * wrapped optimizer applies them: every rank then takes the same step, the one a single process
 * would take on the union of the ranks' batches.
 *
 * Each step packs all gradients, in the order of the variable list, into one Float32Array, with
 * one presence flag per variable after them, and makes one blocking allreduce (tfjs calls
 * `minimize` and `applyGradients` synchronously, inside `fit`'s tidy). Gradients are matched by
 * position, not name, because variable names carry per-process counters. A variable without a
 * gradient on this rank sends zeros; one that has a gradient on no rank is skipped, as tfjs does.
 */
export class DistributedOptimizer extends Optimizer {
  readonly stats: ExchangeStats = { steps: 0, allreduceMs: 0, packMs: 0, elements: 0 };
  private verifiedLayout: string | undefined;

  constructor(
    readonly inner: Optimizer,
    readonly comm: Comm,
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
    const sizes = slots.map((s) => elementCount(s.shape));
    const total = sizes.reduce((a, b) => a + b, 0);
    // A fresh buffer each step: the cpu backend keeps the arrays it is given as tensor storage.
    const buf = new Float32Array(total + entries.length);
    let offset = 0;
    entries.forEach(({ tensor }, i) => {
      if (tensor != null) {
        buf.set(tensor.dataSync(), offset);
        buf[total + i] = 1;
      }
      offset += sizes[i];
    });
    const t1 = performance.now();
    if (this.comm.size > 1) this.comm.allreduceSync(buf, { op: "average" });
    const t2 = performance.now();

    tidy(() => {
      let at = 0;
      const averaged = slots.map(({ name, shape }, i) => {
        const grad = buf[total + i] > 0 ? tensor(buf.subarray(at, at + sizes[i]), shape as number[], "float32") : null;
        at += sizes[i];
        return { name, tensor: grad as Tensor };
      });
      this.inner.applyGradients(dropAbsent ? averaged.filter((g) => g.tensor != null) : averaged);
    });
    this.stats.steps++;
    this.stats.allreduceMs += t2 - t1;
    this.stats.packMs += t1 - t0;
    this.stats.elements = buf.length;
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
