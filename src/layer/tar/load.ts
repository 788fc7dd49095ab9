/**
 * The tar layer's modules (index.ts), loaded on first use: a directory stack, and the CLI's checks of
 * one, never load them (about 10 ms of CPU).
 *
 * Invariant: imports nothing at load; only type imports of the tar code.
 */

/** The tar layer's modules. */
export function tarModules(): typeof import(".") {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(".") as typeof import(".");
}

/** Whether the file at `path` is a tar archive a layer can be made of (archive.ts). */
export function isTarArchive(path: string): boolean {
  return tarModules().isTarArchive(path);
}
