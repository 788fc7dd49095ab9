/**
 * fuse-native's raw operations (libfuse 2 high-level, path based) mapped onto the union core.
 *
 * `dispatch(name, signal, args)` takes exactly what fuse-native hands its `_op_<name>` methods (after the
 * signal) and answers through `signal` the way the addon reads it back. mount.ts routes every `_op_*`
 * here, below fuse-native's public `ops` API, because that API loses information: fgetattr's file handle,
 * the getxattr/listxattr buffer size (ERANGE), and utimens' mtime (see `recoverTimes`).
 *
 * Invariants:
 * - Every op answers exactly once, synchronously: 0, a byte count or handle, or a negative errno. Every
 *   thrown error goes through `toErrno` (unknown ones become EIO and are reported through `onUnknown`);
 *   the binding would turn anything else into EPERM.
 * - Ops that lend a buffer (read, write, setxattr, getxattr, listxattr) always hand its ArrayBuffer back,
 *   also on error: the addon detaches it and aborts the process when it is missing.
 * - Paths, names and link targets arrive as text (the addon decoded the kernel's bytes as UTF-8, so a
 *   non-UTF-8 name arrives with U+FFFD in it and is not found) and become byte strings with `fromText`;
 *   names going back (readdir, readlink) are turned into text with `toText`.
 * - New objects belong to `caller`, the daemon's own user: the binding does not say who is calling.
 * - Core calls are synchronous on the JS thread: one op at a time, whatever libfuse's thread count.
 */
import { constants } from "node:fs";
import { errnoOf, fsError, toErrno } from "../../errors";
import { fromText, toText } from "../../sys/bytes";
import type { Caller, SetAttrRequest, UnionOps } from "../../unionfs/types";
import type { Signal } from "./binding";
import { direntArray, nsOfMs, statArray, statfsArray, u64 } from "./encode";

/** fuse-native's op code for utimens, and where its per-thread locals keep the two times (x86-64). */
export const OP_UTIMENS = 12;
export const LOCALS_OP_OFFSET = 8;
export const LOCALS_ATIME_OFFSET = 104;
export const LOCALS_MTIME_OFFSET = 112;

const ERANGE = errnoOf("ERANGE");
const ENOSYS = errnoOf("ENOSYS");
const NO_ID = 0xffff_ffff;

export interface BridgeOptions {
  /** Owner of new files, directories, nodes and links. */
  caller: Caller;
  /** Called with one line per op when set (the `debug` option). */
  log?: (line: string) => void;
  /** Called with errors that carry no errno (they become EIO). */
  onUnknown?: (err: unknown) => void;
}

/**
 * utimens: fuse-native 2.2.6 passes the access time in both slots. Its per-thread locals buffer still
 * holds both times (ms) at fixed offsets; they are used when that buffer is the utimens call's (op code)
 * and its atime matches the one passed, else mtime falls back to what the binding says (the atime).
 */
export function recoverTimes(
  locals: Buffer | undefined,
  atimeMs: number,
): { atimeMs: number; mtimeMs: number; recovered: boolean } {
  if (
    locals !== undefined &&
    locals.length >= LOCALS_MTIME_OFFSET + 8 &&
    locals.readUInt32LE(LOCALS_OP_OFFSET) === OP_UTIMENS &&
    locals.readBigUInt64LE(LOCALS_ATIME_OFFSET) === BigInt(atimeMs)
  ) {
    return { atimeMs, mtimeMs: Number(locals.readBigUInt64LE(LOCALS_MTIME_OFFSET)), recovered: true };
  }
  return { atimeMs, mtimeMs: atimeMs, recovered: false };
}

function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

/** The ArrayBuffer the addon wants back with a lent buffer. */
function lent(buf: unknown): ArrayBufferLike | undefined {
  return buf instanceof Uint8Array ? buf.buffer : undefined;
}

type Op = (signal: Signal, args: readonly unknown[]) => void;

export class NativeBridge {
  /** The addon's per-thread locals for the op being handled (set by mount.ts around each call). */
  locals: Buffer | undefined;
  private readonly table: Record<string, Op>;

  constructor(
    private readonly ops: UnionOps,
    private readonly options: BridgeOptions,
  ) {
    this.table = this.buildTable();
  }

  /** The op names the bridge implements (fuse-native registers only these with libfuse). */
  get names(): string[] {
    return Object.keys(this.table);
  }

  dispatch(name: string, signal: Signal, args: readonly unknown[]): void {
    const op = this.table[name];
    if (op === undefined) {
      signal(-ENOSYS);
      return;
    }
    op(signal, args);
  }

  /**
   * Runs `body`, which answers through `signal` on success; a throw answers with the negative errno and
   * `onError` (the values the addon needs back even on failure).
   */
  private run(name: string, path: unknown, signal: Signal, body: () => unknown, ...onError: unknown[]): void {
    let result: unknown;
    try {
      result = body();
    } catch (err) {
      const errno = toErrno(err, this.options.onUnknown);
      this.options.log?.(`${name} ${String(path)} -> -${errno} (${(err as { code?: string })?.code ?? "?"})`);
      signal(-errno, ...onError);
      return;
    }
    this.options.log?.(`${name} ${String(path)} -> ok${typeof result === "number" ? ` ${result}` : ""}`);
  }

  private setattr(name: string, signal: Signal, path: unknown, req: SetAttrRequest, fh?: number): void {
    this.run(name, path, signal, () => {
      const p = fromText(path as string);
      if (fh === undefined) this.ops.setattr(p, req);
      else this.ops.setattr(p, req, fh);
      signal(0);
    });
  }

  private buildTable(): Record<string, Op> {
    const ops = this.ops;
    const caller = this.options.caller;
    const p = (v: unknown): string => fromText(v as string);
    const n = (v: unknown): number => v as number;
    return {
      getattr: (s, [path]) => this.run("getattr", path, s, () => s(0, statArray(ops.getattr(p(path))))),
      fgetattr: (s, [path, fh]) =>
        this.run("fgetattr", path, s, () => s(0, statArray(ops.getattr(p(path), n(fh))))),
      access: (s, [path, mask]) =>
        this.run("access", path, s, () => {
          ops.access(p(path), n(mask));
          s(0);
        }),
      statfs: (s, [path]) => this.run("statfs", path, s, () => s(0, statfsArray(ops.statfs(p(path))))),
      readdir: (s, [path]) =>
        this.run("readdir", path, s, () => {
          const dir = p(path);
          const dh = ops.opendir(dir);
          let entries;
          try {
            entries = ops.readdir(dh);
          } finally {
            ops.releasedir(dh);
          }
          const self = ops.getattr(dir);
          let up = self;
          if (dir !== "/") {
            try {
              up = ops.getattr(parentOf(dir));
            } catch {
              // the parent went away meanwhile: ".." keeps the directory's own attributes
            }
          }
          const names = [".", "..", ...entries.map((e) => toText(e.name))];
          const stats = [
            direntArray(self.mode, self.ino),
            direntArray(up.mode, up.ino),
            ...entries.map((e) => direntArray(e.type, e.ino)),
          ];
          s(0, names, stats);
        }),
      readlink: (s, [path]) => this.run("readlink", path, s, () => s(0, toText(ops.readlink(p(path))))),
      open: (s, [path, flags]) =>
        this.run("open", path, s, () => {
          const fh = ops.open(p(path), n(flags));
          s(0, fh);
          return fh;
        }),
      // fuse-native does not pass create's open flags: O_RDWR serves every access the kernel allows.
      create: (s, [path, mode]) =>
        this.run("create", path, s, () => {
          const { fh } = ops.create(p(path), constants.O_CREAT | constants.O_RDWR, n(mode), caller);
          s(0, fh);
          return fh;
        }),
      read: (s, [path, fh, buf, len, lo, hi]) =>
        this.run(
          "read",
          path,
          s,
          () => {
            const out = buf as Buffer;
            const data = ops.read(n(fh), n(len), BigInt(u64(n(lo), n(hi))));
            const count = data.copy(out, 0, 0, Math.min(data.length, n(len)));
            s(count, 0, lent(out));
            return count;
          },
          0,
          lent(buf),
        ),
      write: (s, [path, fh, buf, len, lo, hi]) =>
        this.run(
          "write",
          path,
          s,
          () => {
            const data = (buf as Buffer).subarray(0, n(len));
            const count = ops.write(n(fh), data, BigInt(u64(n(lo), n(hi))));
            s(count, 0, lent(buf));
            return count;
          },
          0,
          lent(buf),
        ),
      flush: (s, [path, fh]) =>
        this.run("flush", path, s, () => {
          ops.flush(n(fh));
          s(0);
        }),
      fsync: (s, [path, datasync, fh]) =>
        this.run("fsync", path, s, () => {
          ops.fsync(n(fh), n(datasync) !== 0);
          s(0);
        }),
      fsyncdir: (s) => s(0),
      release: (s, [path, fh]) =>
        this.run("release", path, s, () => {
          ops.release(n(fh));
          s(0);
        }),
      truncate: (s, [path, lo, hi]) => this.setattr("truncate", s, path, { size: BigInt(u64(n(lo), n(hi))) }),
      ftruncate: (s, [path, fh, lo, hi]) =>
        this.setattr("ftruncate", s, path, { size: BigInt(u64(n(lo), n(hi))) }, n(fh)),
      utimens: (s, [path, aLo, aHi]) => {
        const t = recoverTimes(this.locals, u64(n(aLo), n(aHi)));
        this.setattr("utimens", s, path, { atime: nsOfMs(t.atimeMs), mtime: nsOfMs(t.mtimeMs) });
      },
      chmod: (s, [path, mode]) => this.setattr("chmod", s, path, { mode: n(mode) }),
      chown: (s, [path, uid, gid]) => {
        const req: SetAttrRequest = {};
        if (n(uid) !== NO_ID) req.uid = n(uid);
        if (n(gid) !== NO_ID) req.gid = n(gid);
        this.setattr("chown", s, path, req);
      },
      mknod: (s, [path, mode, dev]) =>
        this.run("mknod", path, s, () => {
          ops.mknod(p(path), n(mode), n(dev), caller);
          s(0);
        }),
      mkdir: (s, [path, mode]) =>
        this.run("mkdir", path, s, () => {
          ops.mkdir(p(path), n(mode), caller);
          s(0);
        }),
      unlink: (s, [path]) =>
        this.run("unlink", path, s, () => {
          ops.unlink(p(path));
          s(0);
        }),
      rmdir: (s, [path]) =>
        this.run("rmdir", path, s, () => {
          ops.rmdir(p(path));
          s(0);
        }),
      // libfuse 2's high-level API has no renameat2: flags never get here (the kernel answers EINVAL).
      rename: (s, [from, to]) =>
        this.run("rename", from, s, () => {
          ops.rename(p(from), p(to), 0);
          s(0);
        }),
      link: (s, [existing, to]) =>
        this.run("link", existing, s, () => {
          ops.link(p(existing), p(to));
          s(0);
        }),
      // fuse-native passes (target, path of the new link).
      symlink: (s, [target, path]) =>
        this.run("symlink", path, s, () => {
          ops.symlink(p(target), p(path), caller);
          s(0);
        }),
      setxattr: (s, [path, name, value, _position, flags]) =>
        this.run(
          "setxattr",
          path,
          s,
          () => {
            ops.setxattr(p(path), p(name), Buffer.from(value as Buffer), n(flags));
            s(0, lent(value));
          },
          lent(value),
        ),
      getxattr: (s, [path, name, buf]) =>
        this.run(
          "getxattr",
          path,
          s,
          () => this.sized(s, ops.getxattr(p(path), p(name)) ?? noData(), buf as Buffer | undefined),
          lent(buf),
        ),
      listxattr: (s, [path, buf]) =>
        this.run(
          "listxattr",
          path,
          s,
          () => {
            const names = ops.listxattr(p(path));
            this.sized(
              s,
              Buffer.from(names.map((x) => `${x}\0`).join(""), "latin1"),
              buf as Buffer | undefined,
            );
          },
          lent(buf),
        ),
      removexattr: (s, [path, name]) =>
        this.run("removexattr", path, s, () => {
          ops.removexattr(p(path), p(name));
          s(0);
        }),
    };
  }

  /** getxattr/listxattr: size 0 asks for the length; a value larger than the buffer is ERANGE. */
  private sized(s: Signal, value: Buffer, buf: Buffer | undefined): number {
    const room = buf?.length ?? 0;
    if (room === 0) {
      s(value.length, lent(buf));
    } else if (value.length > room) {
      s(-ERANGE, lent(buf));
    } else {
      value.copy(buf as Buffer);
      s(value.length, lent(buf));
    }
    return value.length;
  }
}

/** The answer to a getxattr of an attribute the object does not have. */
function noData(): never {
  throw fsError("ENODATA");
}
