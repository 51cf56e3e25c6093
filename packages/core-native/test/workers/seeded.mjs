// Reproducible pseudo-random words for test workers: any rank can regenerate any rank's input,
// so each checks its result against a reference it computes itself.

// splitmix32-style finaliser.
export function mix(a) {
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b);
  a = Math.imul(a ^ (a >>> 13), 0xc2b2ae35);
  return (a ^ (a >>> 16)) >>> 0;
}

/** A 32-bit word for (seed, rank, index). */
export const word = (seed, r, i) => mix(Math.imul(seed, 0x9e3779b9) ^ mix(r * 0x632be5ab + i));
