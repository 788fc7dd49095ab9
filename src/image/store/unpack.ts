/**
 * Unpacking one layer blob (plain, gzip or zstd) into a layer directory, in one pass over the blob:
 * the compressed bytes are hashed (the manifest's digest), the uncompressed tar is hashed (the config's
 * diff ID), recorded as a tar-split, and unpacked by `importLayerStream` with overlay-format whiteouts,
 * all from the same read.
 *
 * Invariants: nothing here publishes anything: the caller unpacks into a staging directory and
 * publishes only after this resolved, so a blob whose digest or diff ID is wrong leaves no layer. A
 * wrong digest is reported as such even when the blob also fails to decompress. Every failure is one
 * UsageError line naming the blob.
 */
import * as fs from "node:fs";
import { once } from "node:events";
import { PassThrough, Readable, type Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { ArchiveError, archiveFromStream, type ArchiveInput } from "../archive-input";
import { importLayerStream } from "../import";
import type { Progress } from "../progress";
import { UsageError } from "../../errors";
import { HashSink, hashFile, hashing, type Digest } from "./digest";
import { TarSplitRecorder } from "./tarsplit";

export interface LayerBlob {
  /** The blob file: a layer tar, plain or compressed. */
  file: string;
  /** The diff ID the image config gives for it. */
  diffId: Digest;
  /** The digest the manifest gives for the blob itself, when it gives one. */
  digest?: Digest;
  /** For messages: "layer 2 of busybox:latest". */
  what: string;
}

export interface UnpackOptions {
  onWarning?: (message: string) => void;
  /** Told of every compressed byte read, and of the entries once the layer is done. */
  progress?: Progress;
}

/** Writes chunks to every sink with backpressure, then ends them and waits until they finished. */
async function fanOut(source: AsyncIterable<Buffer>, sinks: Writable[]): Promise<void> {
  const waits = sinks.map((s) => finished(s));
  for (const w of waits) w.catch(() => undefined);
  try {
    for await (const chunk of source) {
      await Promise.all(sinks.map((s) => (s.write(chunk) ? undefined : once(s, "drain"))));
    }
  } catch (err) {
    for (const s of sinks) s.destroy();
    throw err;
  }
  for (const s of sinks) s.end();
  await Promise.all(waits);
}

/** The blob's digest as read (all of it was), else by reading the file again. */
async function blobDigest(blob: LayerBlob, packed: HashSink): Promise<Digest> {
  return packed.bytes === fs.statSync(blob.file).size ? packed.digest() : (await hashFile(blob.file)).digest;
}

async function open(blob: LayerBlob, packed: HashSink, opts: UnpackOptions): Promise<ArchiveInput> {
  const raw = Readable.from(hashing(packed)(fs.createReadStream(blob.file)));
  try {
    return await archiveFromStream(blob.what, raw, undefined, (n) => opts.progress?.add(n));
  } catch (err) {
    raw.destroy();
    throw err instanceof ArchiveError ? new UsageError(err.message) : err;
  }
}

/**
 * Unpacks `blob` into `diff` (which must not exist) and its tar-split into `splitFile`, checking its
 * digests. Returns the bytes of file data and the entries in its tar.
 */
export async function unpackBlob(
  blob: LayerBlob,
  diff: string,
  splitFile: string,
  opts: UnpackOptions = {},
): Promise<{ size: number; entries: number }> {
  const packed = new HashSink();
  const input = await open(blob, packed, opts);
  const plain = new HashSink();
  const split = new TarSplitRecorder(splitFile);
  const feed = new PassThrough();
  const importing = importLayerStream(feed, diff, {
    format: "overlay",
    name: blob.what,
    onWarning: (m) => opts.onWarning?.(`${blob.what}: ${m}`),
  });
  // Whatever the importer leaves unread (padding after the end of the archive) still reaches the sinks.
  void importing.then(
    () => feed.resume(),
    (err: unknown) => feed.destroy(err as Error),
  );
  const [fed, imported] = await Promise.allSettled([fanOut(input.chunks, [plain, split, feed]), importing]);
  input.close();
  if (blob.digest !== undefined) {
    const got = await blobDigest(blob, packed);
    if (got !== blob.digest) {
      throw new UsageError(`${blob.what}: its digest is ${got}, the manifest says ${blob.digest}`);
    }
  }
  if (imported.status === "rejected") throw imported.reason;
  if (fed.status === "rejected") {
    const err = fed.reason as Error;
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${blob.what} is not a readable layer tar (${err.message})`);
  }
  if (plain.digest() !== blob.diffId) {
    throw new UsageError(
      `${blob.what}: its diff ID is ${plain.digest()}, the image config says ${blob.diffId}`,
    );
  }
  opts.progress?.add(0, split.entries);
  return { size: split.fileBytes, entries: split.entries };
}
