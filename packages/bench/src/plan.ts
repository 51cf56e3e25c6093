// What every implementation in `unicc-bench` runs, decided once here and handed to each program as
// one argument, so that unicc, Gloo and Open MPI are timed over exactly the same repetitions.

export interface Step {
  bytes: number;
  /** Timed repetitions. */
  iters: number;
  /** Untimed repetitions before them. */
  warmup: number;
  /**
   * Microseconds of busy compute between the barrier and t0, as a training step computes before
   * it hands over a gradient: the communication threads have gone idle by the time the call comes.
   */
  gapUs: number;
}

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };
/** MPI and Gloo count elements in a C int. */
const MAX_BYTES = 4 * (2 ** 31 - 1);

export function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)(i?B)?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size '${s}' (expected e.g. 1K, 64M, 4096)`);
  const bytes = Number(m[1]) * UNITS[m[2].toUpperCase()];
  if (bytes < 4 || bytes % 4 || bytes > MAX_BYTES) throw new Error(`size '${s}' must be a whole number of float32s, under 8G`);
  return bytes;
}

export function formatSize(bytes: number): string {
  for (const unit of ["G", "M", "K"]) if (bytes >= UNITS[unit] && bytes % UNITS[unit] === 0) return `${bytes / UNITS[unit]}${unit}`;
  return String(bytes);
}

/** "1K-256M": every power-of-4 multiple of the first size up to the second; or a list "1K,1M,256M". */
export function parseSizes(spec: string): number[] {
  const range = /^([^,-]+)-([^,-]+)$/.exec(spec.trim());
  if (!range) return spec.split(",").map(parseSize);
  const [lo, hi] = [parseSize(range[1]), parseSize(range[2])];
  if (lo > hi) throw new Error(`empty size range '${spec}'`);
  const sizes: number[] = [];
  for (let b = lo; b <= hi; b *= 4) sizes.push(b);
  return sizes;
}

/**
 * About 1 GiB of allreduce per size, kept between 200 runs (1K to 4M: small sizes are cheap and
 * noisy) and 5 (256M), which keeps the default bench at 2 and 4 ranks with both peers within minutes.
 */
export function itersFor(bytes: number): number {
  return Math.min(200, Math.max(5, Math.round(2 ** 30 / bytes)));
}

export function makePlan(sizes: number[], iters?: number, gapUs = 0): Step[] {
  return sizes.map((bytes) => {
    const k = iters ?? itersFor(bytes);
    return { bytes, iters: k, warmup: Math.max(2, Math.ceil(k / 20)), gapUs };
  });
}

/** "bytes:iters:warmup:gap_us,..." (gap_us may be left out: 0) — the programs' one argument, easy to split in C, Python and JS alike. */
export function encodePlan(plan: Step[]): string {
  return plan.map((s) => `${s.bytes}:${s.iters}:${s.warmup}:${s.gapUs}`).join(",");
}

export function decodePlan(arg: string): Step[] {
  return arg.split(",").map((item) => {
    const [bytes, iters, warmup, gapUs = 0] = item.split(":").map(Number);
    if (!(bytes > 0 && bytes % 4 === 0 && iters > 0 && warmup >= 0 && gapUs >= 0)) throw new Error(`bad plan item '${item}'`);
    return { bytes, iters, warmup, gapUs };
  });
}

/** Keeps the CPU busy for `us` microseconds (the "compute" of a gap). */
export function computeFor(us: number): void {
  const until = process.hrtime.bigint() + BigInt(Math.round(us * 1000));
  while (process.hrtime.bigint() < until);
}

/** Bus bandwidth as nccl-tests defines it for allreduce, in GB/s (1e9 bytes): bytes / time x 2(n-1)/n. */
export function busbwGBps(bytes: number, seconds: number, ranks: number): number {
  return ((bytes / seconds) * 2 * (ranks - 1)) / ranks / 1e9;
}

/** Median of the times; the peers compute it the same way (mean of the middle two for an even count). */
export function median(times: number[]): number {
  const s = [...times].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}
