/**
 * NumPy's legacy `np.random.RandomState(seed).permutation(n)` (MT19937 seeded with init_genrand,
 * Fisher-Yates from the end with rejection-sampled bounded integers), so that Node ranks split
 * the digits exactly as examples/digits.py does in Python.
 */
export function numpyPermutation(n: number, seed: number): Int32Array {
  const next = mt19937(seed);
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = boundedInt(next, i);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** A uniform integer in [0, max] the way NumPy's random_interval draws it (max < 2^32). */
function boundedInt(next: () => number, max: number): number {
  let mask = max;
  for (const s of [1, 2, 4, 8, 16]) mask |= mask >>> s;
  mask >>>= 0;
  let v: number;
  do v = (next() & mask) >>> 0;
  while (v > max);
  return v;
}

function mt19937(seed: number): () => number {
  const mt = new Uint32Array(624);
  mt[0] = seed >>> 0;
  for (let i = 1; i < 624; i++) mt[i] = (Math.imul(1812433253, mt[i - 1] ^ (mt[i - 1] >>> 30)) + i) >>> 0;
  let k = 624;
  return () => {
    if (k >= 624) {
      for (let i = 0; i < 624; i++) {
        const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
        mt[i] = mt[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      k = 0;
    }
    let y = mt[k++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
}
