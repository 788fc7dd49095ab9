/**
 * Seeded pseudo-random numbers for tests that must replay: the same seed gives the same sequence on
 * every machine and in every process (mulberry32; not for anything but test data).
 */

export type Rand = () => number;

/** mulberry32: numbers in [0, 1), a deterministic function of `seed` (taken modulo 2^32). */
export function prng(seed: number): Rand {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [0, n). */
export function randInt(rand: Rand, n: number): number {
  return Math.floor(rand() * n);
}

/** One element of a non-empty array. */
export function pick<T>(rand: Rand, xs: readonly T[]): T {
  if (xs.length === 0) throw new Error("pick: empty array");
  return xs[randInt(rand, xs.length)] as T;
}

/** `n` pseudo-random bytes. */
export function randBytes(rand: Rand, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = randInt(rand, 256);
  return b;
}
