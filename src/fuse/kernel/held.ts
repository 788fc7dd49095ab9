/**
 * Requests held back while the data of a big copy-up is copied in the background (see
 * src/cow/background.ts), so that everything else keeps being answered meanwhile.
 *
 * Invariants:
 * - Only requests that would copy a file up are held: OPEN for writing without O_TRUNC, and SETATTR.
 *   The core decides (`background.stage`) whether the copy is long enough to hold for; a request for a file
 *   whose copy is already running is held behind the first.
 * - A held request is a private copy of its bytes; it is served, in arrival order per file, by the
 *   ordinary dispatch once its copy finished, at which point its copy-up finds the data staged.
 * - Requests about other files, and reads of the held file itself (it is still the lower file until the
 *   copy-up is done), are served at once.
 * - With a debug log, each background copy is logged when it starts, every second while only held
 *   requests wait for it (bytes done, rate), and when it ends; without one, nothing here logs.
 */
import type { CopyProgress } from "../../unionfs/types";
import { decodeInHeader } from "./codec";
import { Op, Size } from "./protocol";
import type { Session } from "./session";
import { pollReadable } from "../../sys/libc";
import { performance } from "node:perf_hooks";
import { toText } from "../../sys/bytes";

const MiB = 1024 * 1024;
/** How often a debug log shows the copies running while only held requests wait. */
const PROGRESS_MS = 1000;

/** "512.0 MiB of 1024.0 MiB, 310.4 MiB/s" */
function progressText(copied: bigint, size: bigint, since: number): string {
  const seconds = Math.max((performance.now() - since) / 1000, 1e-3);
  const done = Number(copied) / MiB;
  return `${done.toFixed(1)} MiB of ${(Number(size) / MiB).toFixed(1)} MiB, ${(done / seconds).toFixed(1)} MiB/s`;
}

const O_ACCMODE = 3;
const O_RDONLY = 0;
const O_TRUNC = 0o1000;

/** Whether a request of this shape may copy its node up (and so may be worth holding). */
function copiesUp(request: Buffer, opcode: number): boolean {
  if (opcode === Op.SETATTR) return true;
  if (opcode !== Op.OPEN || request.length < Size.IN_HEADER + 4) return false;
  const flags = request.readUInt32LE(Size.IN_HEADER);
  return (flags & O_ACCMODE) !== O_RDONLY && (flags & O_TRUNC) === 0;
}

/** A held request and where its reply goes (the transport's ticket: -1 the device, else a ring entry). */
export interface Held {
  request: Buffer;
  ticket: number;
}

export class HeldRequests {
  private readonly byKey = new Map<string, Held[]>();
  /** Paths of the copies held requests wait for, for the debug log. */
  private readonly paths = new Map<string, string>();

  constructor(
    private readonly s: Session,
    private readonly log?: (line: string) => void,
  ) {}

  get waiting(): boolean {
    return this.byKey.size > 0;
  }

  /** Holds `request` (copying its bytes) when it waits for a background copy; false: serve it now. */
  hold(request: Buffer, ticket = -1): boolean {
    const background = this.s.ops.background;
    if (background === undefined || !copiesUp(request, request.readUInt32LE(4))) return false; // 4: opcode
    const h = decodeInHeader(request);
    let path: string;
    try {
      path = this.s.table.path(h.nodeid);
    } catch {
      return false; // dispatch answers it (ENOENT, ESTALE)
    }
    const key = background.stage(path);
    if (key === undefined) return false;
    const queue = this.byKey.get(key) ?? [];
    if (queue.length === 0 && this.log !== undefined) {
      this.paths.set(key, path);
      const p = background.progress?.().find((c) => c.key === key);
      if (p !== undefined)
        this.log(
          `copy-up ${JSON.stringify(toText(path))}: ${progressText(p.copied, p.size, p.since)} (in the background)`,
        );
    }
    queue.push({ request: Buffer.from(request), ticket });
    this.byKey.set(key, queue);
    return true;
  }

  /**
   * Blocks until the device has a request or a copy finished; returns the held requests whose copies
   * finished (possibly none), oldest first.
   */
  wait(devFd: number): Held[] {
    const background = this.s.ops.background;
    if (background === undefined) return [];
    for (;;) {
      const [request, woken] = pollReadable([devFd, background.wakeFd], this.log ? PROGRESS_MS : -1);
      if (woken) break;
      if (request) return [];
      this.logProgress(background.progress?.() ?? []); // a second passed with nothing to do
    }
    return this.ready();
  }

  /** The descriptor that becomes readable when a background copy finished (for a transport's own poll). */
  get wakeFd(): number | undefined {
    return this.s.ops.background?.wakeFd;
  }

  /** The held requests whose copies finished (possibly none), oldest first. */
  ready(): Held[] {
    const background = this.s.ops.background;
    if (background === undefined) return [];
    const running = new Map(this.log ? (background.progress?.() ?? []).map((p) => [p.key, p]) : []);
    const out: Held[] = [];
    for (const key of background.finished()) {
      out.push(...(this.byKey.get(key) ?? []));
      this.byKey.delete(key);
      const path = this.paths.get(key);
      this.paths.delete(key);
      const p = running.get(key);
      if (this.log !== undefined && path !== undefined && p !== undefined)
        this.log(
          `copy-up ${JSON.stringify(toText(path))}: data copied, ${progressText(p.size, p.size, p.since)}`,
        );
    }
    return out;
  }

  private logProgress(running: readonly CopyProgress[]): void {
    for (const p of running) {
      const path = this.paths.get(p.key);
      if (path !== undefined && this.log !== undefined)
        this.log(`copy-up ${JSON.stringify(toText(path))}: ${progressText(p.copied, p.size, p.since)}`);
    }
  }
}
