/**
 * Test double for the transport: a UnionOps that passes every call through to ONE directory
 * (config.branches[0].path), with plain synchronous fs calls (bigint stats, Buffer paths).
 *
 * Invariants: no union logic at all; file handles are the real fds and dir handles index a snapshot
 * taken at opendir; new objects are chowned to the caller, like the core does; `destroy` closes all.
 */
import * as fs from "node:fs";
import type { UnionConfig } from "../../../src/unionfs/config";
import type { Attr, Caller, DirEntry, SetAttrRequest, StatFs, UnionOps } from "../../../src/unionfs/types";
import { bstr, bytesOf, fromText } from "../../../src/sys/bytes";
import * as libc from "../../../src/sys/libc";
import { toAttr } from "../../../src/unionfs/attr";
import { ACL_DEFAULT, creationMode } from "../../../src/unionfs/acl";

const S_IFMT = 0o170000;

/** The core's conversion, with the raw inode number. */
function attrOf(st: fs.BigIntStats): Attr {
  return toAttr(st, st.ino);
}

export function createPassthrough(config: UnionConfig): UnionOps {
  const top = config.branches[0];
  if (top === undefined) throw new Error("passthrough: no branch");
  const root = fromText(top.path.replace(/\/+$/, ""));
  /** Byte string of the real path (libc takes these). */
  const rb = (p: string): string => (p === "/" ? root || "/" : root + p);
  const real = (p: string): Buffer => bytesOf(rb(p));
  const files = new Set<number>();
  const dirs = new Map<number, DirEntry[]>();
  let nextDir = 1;

  const lstat = (p: string): Attr => attrOf(fs.lstatSync(real(p), { bigint: true }));
  /** The caller's umask (when the transport left it to us) unless the parent has a default ACL. */
  const modeFor = (p: string, mode: number, c: Caller): number => {
    const parent = rb(p.slice(0, p.lastIndexOf("/")) || "/");
    return creationMode(mode, c.umask, libc.tryLgetxattr(parent, ACL_DEFAULT) !== undefined);
  };
  const own = (p: string, c: Caller): Attr => {
    fs.lchownSync(real(p), c.uid, c.gid);
    return lstat(p);
  };

  return {
    getattr: (p, fh) => (fh !== undefined ? attrOf(fs.fstatSync(fh, { bigint: true })) : lstat(p)),
    readlink: (p) => bstr(fs.readlinkSync(real(p), { encoding: "buffer" })),
    access: (p, mask) => fs.accessSync(real(p), mask),
    mknod: (p, mode, rdev, c) => {
      libc.mknod(rb(p), modeFor(p, mode, c), rdev);
      return own(p, c);
    },
    mkdir: (p, mode, c) => {
      fs.mkdirSync(real(p), modeFor(p, mode, c));
      return own(p, c);
    },
    symlink: (target, p, c) => {
      fs.symlinkSync(bytesOf(target), real(p));
      return own(p, c);
    },
    link: (existing, p) => {
      fs.linkSync(real(existing), real(p));
      return lstat(p);
    },
    unlink: (p) => fs.unlinkSync(real(p)),
    rmdir: (p) => fs.rmdirSync(real(p)),
    rename: (from, to, flags) =>
      flags === 0 ? fs.renameSync(real(from), real(to)) : libc.renameat2(rb(from), rb(to), flags),
    setattr: (p, req, fh) => setattr(p, req, fh),

    open: (p, flags) => track(fs.openSync(real(p), flags)),
    create: (p, flags, mode, c) => {
      const fd = track(fs.openSync(real(p), flags | fs.constants.O_CREAT, modeFor(p, mode, c)));
      fs.fchownSync(fd, c.uid, c.gid);
      return { fh: fd, attr: attrOf(fs.fstatSync(fd, { bigint: true })) };
    },
    read: (fh, length, position) => {
      const buf = Buffer.allocUnsafe(length);
      return buf.subarray(0, fs.readSync(fh, buf, 0, length, position));
    },
    write: (fh, data, position) => fs.writeSync(fh, data, 0, data.length, Number(position)),
    flush: () => undefined,
    fsync: (fh, datasync) => (datasync ? fs.fdatasyncSync(fh) : fs.fsyncSync(fh)),
    release: (fh) => {
      files.delete(fh);
      fs.closeSync(fh);
    },
    fallocate: (fh, mode, offset, length) => libc.fallocate(fh, mode, offset, length),
    lseek: (fh, offset, whence) => libc.lseek(fh, offset, whence),

    opendir: (p) => {
      const dh = nextDir++;
      dirs.set(dh, snapshot(p));
      return dh;
    },
    readdir: (dh) => dirs.get(dh) ?? [],
    releasedir: (dh) => void dirs.delete(dh),
    statfs: (p) => statfs(p),

    setxattr: (p, name, value, flags) => libc.lsetxattr(rb(p), name, value, flags),
    getxattr: (p, name) => libc.lgetxattr(rb(p), name),
    listxattr: (p) => libc.llistxattr(rb(p)),
    removexattr: (p, name) => libc.lremovexattr(rb(p), name),

    destroy: () => {
      for (const fd of files) fs.closeSync(fd);
      files.clear();
      dirs.clear();
    },
  };

  function track(fd: number): number {
    files.add(fd);
    return fd;
  }

  function setattr(p: string, req: SetAttrRequest, fh?: number): Attr {
    const target = real(p);
    if (req.mode !== undefined) {
      if (fh !== undefined) fs.fchmodSync(fh, req.mode);
      else fs.chmodSync(target, req.mode);
    }
    if (req.uid !== undefined || req.gid !== undefined) fs.lchownSync(target, req.uid ?? -1, req.gid ?? -1);
    if (req.size !== undefined) {
      if (fh !== undefined) fs.ftruncateSync(fh, Number(req.size));
      else fs.truncateSync(target, Number(req.size));
    }
    if (req.atime !== undefined || req.mtime !== undefined) libc.utimens(rb(p), req.atime, req.mtime);
    return fh !== undefined ? attrOf(fs.fstatSync(fh, { bigint: true })) : lstat(p);
  }

  function snapshot(p: string): DirEntry[] {
    const dir = rb(p);
    return fs.readdirSync(real(p), { encoding: "buffer" }).map((nameBuf) => {
      const name = bstr(nameBuf);
      const st = fs.lstatSync(bytesOf(dir === "/" ? `/${name}` : `${dir}/${name}`), { bigint: true });
      return { name, type: Number(st.mode) & S_IFMT, ino: st.ino };
    });
  }

  function statfs(p: string): StatFs {
    const s = fs.statfsSync(real(p), { bigint: true });
    const { blocks, bfree, bavail, files, ffree } = s;
    return {
      bsize: Number(s.bsize),
      frsize: Number(s.bsize),
      blocks,
      bfree,
      bavail,
      files,
      ffree,
      namelen: 255,
    };
  }
}

/** Crash injection: the passthrough, except that looking up "/die-now" kills the serving thread. */
export function createCrashy(config: UnionConfig): UnionOps {
  const ops = createPassthrough(config);
  return {
    ...ops,
    getattr: (p, fh) => {
      if (p === "/die-now") process.exit(3); // in the worker: ends the serving thread, not the process
      return ops.getattr(p, fh);
    },
  };
}

/** A filesystem that cannot be built. */
export function createBroken(_config: UnionConfig): UnionOps {
  throw new Error("broken on purpose");
}
