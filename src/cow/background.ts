/**
 * Copying the data of big files in a background thread, so that a long copy-up does not stop the union
 * from answering everything else.
 *
 * Invariants:
 * - A copy is *staged*: its data goes into a fresh file in the work dir that nothing refers to, and only
 *   the ordinary copy-up (copyup.ts, on the union's thread) later takes it over, adds the metadata and
 *   renames it into place. A staged copy is therefore never visible, and a crash leaves only work-dir
 *   litter that the next mount removes.
 * - A staging is keyed by what it copies (layer, path, size, mtime, inode): lower layers never change,
 *   so a finished staging with the same key holds exactly the bytes a copy-up would copy.
 * - One thread copies, one job at a time, started on first use; it reports every job, with its errno,
 *   on a pipe whose read end (`wakeFd`) the caller polls, then calls `collect()` on the union's thread.
 * - A failed staging is kept (its file removed) until `take()` hands its error to the copy-up that
 *   waited for it, so that request is answered with the copy's errno instead of copying again.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { codeOfErrno, fsError, reported } from "../errors";
import type { LayerFile, Scratch, WritableFile } from "../layer";
import * as sys from "../sys/libc";

/** One job for the copy thread (copy-thread.ts). */
export interface CopyJob {
  id: number;
  src: number;
  dst: number;
  size: bigint;
  /** Flush the data to disk before reporting success. */
  sync: boolean;
  /** Write end of the wake pipe. */
  wake: number;
}

/** A copy running now: what it copies (its key), how many bytes of how many are done, since when. */
export interface CopyProgress {
  key: string;
  copied: bigint;
  size: bigint;
  /** performance.now() when the copy began. */
  since: number;
}

/** One report on the wake pipe: job id (u32) and the failure's errno (u32: 0 done). */
export const REPORT_SIZE = 8;

interface Staging {
  key: string;
  size: bigint;
  since: number;
  /** The staged file's path in the work dir. */
  tmp: string;
  src: LayerFile;
  dst: WritableFile;
  /** Set once the thread reported: 0, or the errno it failed with. */
  done?: { errno: number };
}

export class BackgroundCopier {
  private worker: Worker | undefined;
  private pipe: [number, number] | undefined;
  private nextId = 1;
  private readonly running = new Map<number, Staging>();
  private readonly byKey = new Map<string, Staging>();

  /** `work` holds the staged files. */
  constructor(private readonly work: Scratch) {}

  /** Read end of the pipe the copy thread reports on (created on first use). */
  get wakeFd(): number {
    return this.ensurePipe()[0];
  }

  private ensurePipe(): [number, number] {
    this.pipe ??= sys.pipe();
    return this.pipe;
  }

  /** Whether a staging for `key` exists: "copying", "ready", or undefined. */
  state(key: string): "copying" | "ready" | undefined {
    const s = this.byKey.get(key);
    if (s === undefined) return undefined;
    return s.done === undefined ? "copying" : "ready";
  }

  /**
   * Starts copying `size` bytes from `src` (which must have a descriptor) to `dst`, the new work-dir file
   * `tmp`; both files become ours.
   */
  start(key: string, src: LayerFile, dst: WritableFile, tmp: string, size: bigint, sync = true): void {
    if (src.fd === undefined) throw fsError("EBADF", "a background copy needs a file descriptor");
    const id = this.nextId++;
    const staging: Staging = { key, tmp, src, dst, size, since: performance.now() };
    this.running.set(id, staging);
    this.byKey.set(key, staging);
    const job: CopyJob = { id, src: src.fd, dst: dst.fd, size, sync, wake: this.ensurePipe()[1] };
    this.thread().postMessage(job);
  }

  private thread(): Worker {
    if (this.worker === undefined) {
      this.worker = new Worker(path.join(__dirname, "copy-thread.js"));
      this.worker.unref();
    }
    return this.worker;
  }

  /** The copies running now, with the bytes their staged file holds so far. */
  progress(): CopyProgress[] {
    return [...this.running.values()].map((s) => ({
      key: s.key,
      copied: fs.fstatSync(s.dst.fd, { bigint: true }).size,
      size: s.size,
      since: s.since,
    }));
  }

  /** Reads the thread's reports; returns the keys that finished (staged or failed). */
  collect(): string[] {
    const keys: string[] = [];
    sys.readRecords(this.wakeFd, REPORT_SIZE, (buf, off) => {
      const s = this.finish(buf.readUInt32LE(off), buf.readUInt32LE(off + 4));
      if (s !== undefined) keys.push(s.key);
    });
    return keys;
  }

  private finish(id: number, errno: number): Staging | undefined {
    const s = this.running.get(id);
    if (s === undefined) return undefined;
    this.running.delete(id);
    s.src.close();
    s.dst.close();
    s.done = { errno };
    if (errno !== 0) this.work.layer.removeTree(s.tmp);
    return s;
  }

  /**
   * Hands a finished staging's file over (the caller renames it); undefined when there is none. A failed
   * staging throws its errno, once: the request that waited for it fails as the copy did.
   */
  take(key: string): string | undefined {
    const s = this.byKey.get(key);
    if (s?.done === undefined) return undefined;
    this.byKey.delete(key);
    if (s.done.errno !== 0) throw reported(fsError(codeOfErrno(s.done.errno)), "background copy-up failed");
    return s.tmp;
  }

  /** Drops a finished staging nobody will take (its file is removed). */
  drop(key: string): void {
    const s = this.byKey.get(key);
    if (s?.done === undefined) return;
    this.byKey.delete(s.key);
    this.work.layer.removeTree(s.tmp);
  }

  /** Stops the thread; files of unfinished stagings stay in the work dir for the next mount to clean. */
  close(): void {
    void this.worker?.terminate();
    this.worker = undefined;
    for (const s of this.byKey.values()) if (s.done?.errno === 0) this.work.layer.removeTree(s.tmp);
    if (this.pipe !== undefined) for (const fd of this.pipe) sys.closeFd(fd);
    this.pipe = undefined;
  }
}
