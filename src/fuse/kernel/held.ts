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
 */
import { decodeInHeader } from "./codec";
import { Op, Size } from "./protocol";
import type { Session } from "./session";
import { pollReadable } from "../../sys/libc";

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

export class HeldRequests {
  private readonly byKey = new Map<string, Buffer[]>();

  constructor(private readonly s: Session) {}

  get waiting(): boolean {
    return this.byKey.size > 0;
  }

  /** Holds `request` (copying its bytes) when it waits for a background copy; false: serve it now. */
  hold(request: Buffer): boolean {
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
    queue.push(Buffer.from(request));
    this.byKey.set(key, queue);
    return true;
  }

  /**
   * Blocks until the device has a request or a copy finished; returns the held requests whose copies
   * finished (possibly none), oldest first.
   */
  wait(devFd: number): Buffer[] {
    const background = this.s.ops.background;
    if (background === undefined) return [];
    const [, woken] = pollReadable([devFd, background.wakeFd]);
    if (!woken) return [];
    const out: Buffer[] = [];
    for (const key of background.finished()) {
      out.push(...(this.byKey.get(key) ?? []));
      this.byKey.delete(key);
    }
    return out;
  }
}
