/**
 * Content digests as OCI and Docker write them (`sha256:<64 hex>`), and layer chain IDs.
 *
 * Invariants: only sha256 is accepted (a digest of another algorithm, or a malformed one, is a
 * UsageError naming where it came from); every digest this module returns is `sha256:` + 64 lower-case
 * hex digits; hashing reads streams with backpressure (never a whole blob in memory).
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { Writable } from "node:stream";
import { UsageError } from "../../errors";

export type Digest = `sha256:${string}`;

const DIGEST = /^sha256:[0-9a-f]{64}$/;

export function isDigest(s: unknown): s is Digest {
  return typeof s === "string" && DIGEST.test(s);
}

/** `s` as a digest, or a UsageError saying what `what` should have held. */
export function checkDigest(s: unknown, what: string): Digest {
  if (isDigest(s)) return s;
  if (typeof s === "string" && /^[a-z0-9]+([+._-][a-z0-9]+)*:/.test(s) && !s.startsWith("sha256:")) {
    throw new UsageError(`${what}: digest '${s}' uses an algorithm other than sha256 (not supported)`);
  }
  throw new UsageError(`${what}: '${String(s)}' is not a sha256 digest`);
}

/** The 64 hex digits of a digest. */
export function hexOf(d: Digest): string {
  return d.slice("sha256:".length);
}

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** A writable that hashes what goes through it; `digest()` once it finished. */
export class HashSink extends Writable {
  private readonly hash = createHash("sha256");
  private done: Digest | undefined;
  bytes = 0;

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.add(chunk);
    done();
  }

  /** Hashes `chunk` now (for use outside a pipe). */
  add(chunk: Buffer): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }

  /** The digest of everything hashed (no more may be added after). */
  digest(): Digest {
    this.done ??= `sha256:${this.hash.digest("hex")}`;
    return this.done;
  }
}

/** A pipeline step that hashes what passes through it. */
export function hashing(
  sink: HashSink,
  onBytes?: (n: number) => void,
): (src: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* (src) {
    for await (const chunk of src) {
      sink.add(chunk);
      onBytes?.(chunk.length);
      yield chunk;
    }
  };
}

/** sha256 and size of a file's bytes. */
export async function hashFile(file: string): Promise<{ digest: Digest; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of fs.createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { digest: `sha256:${hash.digest("hex")}`, size };
}

/**
 * Chain IDs of a stack of layers, bottom first (as `rootfs.diff_ids` lists them): the first layer's is its
 * diff ID, each next one is sha256 of "<chain ID below> <diff ID>" (the OCI image spec's definition).
 */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) {
    const below = out[out.length - 1];
    out.push(below === undefined ? d : sha256(`${below} ${d}`));
  }
  return out;
}
