/**
 * Waiting on words of shared memory that other threads set (a thread's "ended" state, for one).
 *
 * Invariants: waits with Atomics.wait, so only where the caller may block (a worker thread, or a main
 * thread that accepts it); never longer than the deadline it is given.
 */

/** Waits up to `waitMs` in all until word `index` of each of `words` is `value`; whether they all are. */
export function waitAllEqual(
  words: readonly Int32Array[],
  index: number,
  value: number,
  waitMs: number,
): boolean {
  const deadline = Date.now() + waitMs;
  for (const w of words) {
    for (let now = Atomics.load(w, index); now !== value; now = Atomics.load(w, index)) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      Atomics.wait(w, index, now, left);
    }
  }
  return true;
}
