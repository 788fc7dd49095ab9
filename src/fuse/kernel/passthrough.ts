/**
 * FUSE passthrough (protocol 7.40): open files whose read, write and mmap the kernel serves straight from
 * a backing file, without a request to this daemon.
 *
 * Invariants:
 * - The kernel keeps each node in one I/O mode at a time: cached opens and passthrough opens of one node
 *   never overlap, and every passthrough open of a node names the same backing file. This table is the
 *   daemon's view of those modes. It can only lag the kernel in the safe direction (a RELEASE arrives
 *   after the kernel has dropped the open), so an open it allows is never refused for its mode.
 * - A node's backing id is registered on its first passthrough open and closed when its last passthrough
 *   handle is released.
 * - An open that cannot pass through is served cached. The kernel refuses any non-passthrough open of
 *   a node in passthrough mode, so a later open of such a node with the same backing file always passes
 *   through (even when the core would rather see it), and one with another file (the copy made by a
 *   copy-up under `passthrough=lower`) is a conflict: the caller retires the node and answers ESTALE,
 *   on which the VFS looks the name up again and opens a fresh node.
 * - Cached pages never hide passthrough writes: a passthrough open has no KEEP_CACHE, so the kernel
 *   drops the node's page cache when it enters passthrough mode, and fills none while in it.
 * - The kernel never asks about a passed-through file's writes through a shared mapping, which change
 *   its backing file's mtime and ctime: while a node has a passthrough handle its attributes are
 *   answered uncacheable (Session.attrTimeoutFor) and dropped when it enters passthrough mode, so
 *   `stat` asks this daemon, which reads them from the backing file.
 * - EPERM from the kernel (no CAP_SYS_ADMIN) switches passthrough off for the session; other refusals
 *   (a backing file on overlayfs or FUSE: ELOOP) only for that open.
 */
import { codeOf } from "../../errors";
import { ioctlBuffer } from "../../sys/libc";
import type { BackingFile } from "../../unionfs/types";
import {
  FOPEN_KEEP_CACHE,
  FOPEN_NOFLUSH,
  FOPEN_PASSTHROUGH,
  FUSE_DEV_IOC_BACKING_CLOSE,
  FUSE_DEV_IOC_BACKING_OPEN,
} from "./protocol";

/** What an open reply says: fuse_open_out.open_flags and backing_id. */
export interface OpenMode {
  flags: number;
  backingId: number;
}

/**
 * Cached opens: everything goes through this mount, so cached pages stay valid across opens (KEEP_CACHE);
 * FLUSH would do nothing here (no server-side locks, data is written through), so close skips it.
 */
export const CACHED: OpenMode = { flags: FOPEN_KEEP_CACHE | FOPEN_NOFLUSH, backingId: 0 };
/** The open must be answered ESTALE after retiring the node (see the module invariants). */
export const CONFLICT: OpenMode = { flags: -1, backingId: 0 };

type Kind = "cached" | "pass" | "conflict";

interface NodeModes {
  cached: number;
  pass: number;
  backingId: number;
  dev: bigint;
  ino: bigint;
}

/** The two /dev/fuse ioctls passthrough needs (a seam for unit tests). */
export interface BackingIoctls {
  /** Registers `fd` as a backing file; returns its id; throws errno errors. */
  open(fd: number): number;
  close(id: number): void;
}

export function deviceIoctls(devFd: number): BackingIoctls {
  return {
    open: (fd) => {
      const map = Buffer.alloc(16); // struct fuse_backing_map { int32 fd; u32 flags; u64 padding; }
      map.writeInt32LE(fd, 0);
      return ioctlBuffer(devFd, FUSE_DEV_IOC_BACKING_OPEN, map, "FUSE_DEV_IOC_BACKING_OPEN");
    },
    close: (id) => {
      const arg = Buffer.alloc(4);
      arg.writeUInt32LE(id, 0);
      ioctlBuffer(devFd, FUSE_DEV_IOC_BACKING_CLOSE, arg, "FUSE_DEV_IOC_BACKING_CLOSE");
    },
  };
}

export class Passthrough {
  private readonly nodes = new Map<number, NodeModes>();
  private readonly handles = new Map<number, { nodeid: number; kind: Kind }>();
  private readonly refused = new Set<string>();

  constructor(
    private readonly ioctls: BackingIoctls,
    private enabled: boolean,
    private readonly log: (line: string) => void,
  ) {}

  get active(): boolean {
    return this.enabled;
  }

  /** Decides how handle `fh` of `nodeid` is opened; `backing` is the core's offer, if any. */
  open(nodeid: number, fh: number, backing: BackingFile | undefined): OpenMode {
    const node = this.nodes.get(nodeid) ?? { cached: 0, pass: 0, backingId: 0, dev: 0n, ino: 0n };
    this.nodes.set(nodeid, node);
    const kind = this.choose(node, backing);
    if (kind === "conflict") return CONFLICT;
    this.handles.set(fh, { nodeid, kind });
    if (kind === "pass") {
      node.pass++;
      return { flags: FOPEN_PASSTHROUGH | FOPEN_NOFLUSH, backingId: node.backingId };
    }
    node.cached++;
    return CACHED;
  }

  private choose(node: NodeModes, backing: BackingFile | undefined): Kind {
    if (node.pass > 0) {
      const same = backing !== undefined && backing.dev === node.dev && backing.ino === node.ino;
      return same ? "pass" : "conflict";
    }
    if (backing === undefined || !backing.preferred || !this.enabled || node.cached > 0) return "cached";
    const id = this.register(backing.fd);
    if (id === undefined) return "cached";
    node.backingId = id;
    node.dev = backing.dev;
    node.ino = backing.ino;
    return "pass";
  }

  private register(fd: number): number | undefined {
    try {
      return this.ioctls.open(fd);
    } catch (err) {
      const code = codeOf(err) ?? "EIO";
      if (code === "EPERM") this.enabled = false;
      if (!this.refused.has(code)) {
        this.refused.add(code);
        const scope = this.enabled ? "this file" : "all files";
        this.log(`passthrough refused by the kernel (${code}); ${scope} served cached`);
      }
      return undefined;
    }
  }

  /** Whether node `nodeid` has a handle open in passthrough mode now. */
  passing(nodeid: number): boolean {
    return (this.nodes.get(nodeid)?.pass ?? 0) > 0;
  }

  /** Handle `fh` was released; the node's backing id is dropped with its last passthrough handle. */
  release(fh: number): void {
    const h = this.handles.get(fh);
    if (h === undefined) return;
    this.handles.delete(fh);
    const node = this.nodes.get(h.nodeid);
    if (node === undefined) return;
    if (h.kind === "cached") node.cached--;
    else if (--node.pass === 0) this.unregister(node.backingId);
    if (node.cached === 0 && node.pass === 0) this.nodes.delete(h.nodeid);
  }

  private unregister(id: number): void {
    try {
      this.ioctls.close(id);
    } catch (err) {
      this.log(`could not drop backing file ${id}: ${String(err)}`);
    }
  }
}
