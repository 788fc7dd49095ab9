/**
 * Byte strings: paths and names as one JS char per byte (latin1), so any byte sequence round-trips.
 *
 * Invariant: a byte string is only ever turned into a Buffer (for a syscall) or into UTF-8 text (for a
 * human) here; nothing else decodes paths.
 */

/** Buffer of the bytes of a byte string, ready for any `fs` call that takes a path. */
export function bytesOf(b: string): Buffer {
  return Buffer.from(b, "latin1");
}

/** Byte string of raw bytes (e.g. a name read from the kernel or from readdir). */
export function bstr(buf: Buffer | Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString("latin1");
}

/** Byte string of ordinary (UTF-8) text, such as a path given on the command line. */
export function fromText(text: string): string {
  return Buffer.from(text, "utf8").toString("latin1");
}

/** Human-readable text of a byte string (invalid UTF-8 shows as U+FFFD). */
export function toText(b: string): string {
  return Buffer.from(b, "latin1").toString("utf8");
}
