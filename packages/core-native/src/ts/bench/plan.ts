/** Repetitions per size, shared with the peers' programs: many for small sizes, few for large. */
export function itersFor(bytes: number, budgetS: number): number {
  return Math.max(5, Math.min(200, Math.floor((budgetS * 2e9) / (bytes + 65536))));
}

export function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s.trim());
  if (!m) throw new Error(`bad size '${s}' (e.g. 1K, 64M)`);
  return Number(m[1]) * { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase() as "" | "K" | "M" | "G"];
}

export function formatSize(bytes: number): string {
  for (const [unit, f] of [["G", 1024 ** 3], ["M", 1024 ** 2], ["K", 1024]] as const)
    if (bytes >= f && bytes % f === 0) return `${bytes / f}${unit}`;
  return `${bytes}`;
}

/** "1K-256M" (powers of 4) or a list "1K,1M". */
export function parseSizes(spec: string): number[] {
  const range = /^(\w+)-(\w+)$/.exec(spec);
  if (!range) return spec.split(",").map(parseSize);
  const out: number[] = [];
  for (let b = parseSize(range[1]); b <= parseSize(range[2]); b *= 4) out.push(b);
  return out;
}

/** Bus bandwidth as nccl-tests defines it for allreduce, in GB/s (1e9 bytes). */
export function busbw(bytes: number, seconds: number, ranks: number): number {
  return ((bytes / seconds) * (2 * (ranks - 1))) / ranks / 1e9;
}
