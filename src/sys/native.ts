/**
 * koffi and the C library, loaded on first use instead of on import.
 *
 * Invariants:
 * - Importing this module, or one built on it (libc.ts, stat.ts), loads nothing native: a thread may
 *   load the project's JavaScript ahead of time and still be stopped at any moment (Node aborts the
 *   whole process when it stops a thread in the middle of a native module's initialisation).
 * - Each thread loads koffi and libc.so.6 once, by the first call that needs them.
 */
import type { LibraryHandle } from "koffi";

type Koffi = typeof import("koffi");

let koffiModule: Koffi | undefined;
let libcHandle: LibraryHandle | undefined;

/** koffi itself. */
export function koffi(): Koffi {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (koffiModule ??= require("koffi") as Koffi);
}

/** The C library's handle. */
export function libc(): LibraryHandle {
  return (libcHandle ??= koffi().load("libc.so.6"));
}

/** `make()` once, on the first call of the function returned. */
export function once<T>(make: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: make() }).v;
}
