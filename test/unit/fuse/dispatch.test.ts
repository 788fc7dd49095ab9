/**
 * The dispatcher against a scripted UnionOps: request → core call → reply bytes, lookup accounting,
 * READDIRPLUS fill rules, error mapping, and undo of refused replies.
 */
import { strict as assert } from "node:assert";
import type { Attr, Caller, DirEntry, UnionOps } from "../../../src/unionfs/types";
import { fsError } from "../../../src/errors";
import { describe as describeRequest, dispatch } from "../../../src/fuse/kernel/dispatch";
import type { Outcome } from "../../../src/fuse/kernel/dispatch";
import { Init, Op, WRITE_KILL_SUIDGID } from "../../../src/fuse/kernel/protocol";
import { Session } from "../../../src/fuse/kernel/session";
import { Body, payload, request } from "./requests";
import type { ReqOptions } from "./requests";
import { attrFor } from "../../helpers/attr";

/** A tiny tree: "/" with the entries of `files` (name → mode); every call is recorded. */
class Fake {
  calls: unknown[][] = [];
  files = new Map<string, number>();
  xattr: Buffer | undefined = Buffer.from("0123456789");
  /** What listxattr answers (an Error: thrown). */
  names: string[] | Error = ["user.a", "user.b"];
  constructor() {
    this.files.set("/", 0o040755);
  }

  ops(): UnionOps {
    const rec =
      <A extends unknown[], R>(name: string, f: (...a: A) => R) =>
      (...a: A): R => {
        this.calls.push([name, ...a]);
        return f(...a);
      };
    const stat = (p: string): Attr => {
      const mode = this.files.get(p);
      if (mode === undefined) throw fsError("ENOENT", p);
      return attrFor(mode, BigInt([...this.files.keys()].indexOf(p) + 100));
    };
    const unsupported = (): never => {
      throw fsError("ENOTSUP");
    };
    return {
      getattr: rec("getattr", (p: string, _fh?: number) => stat(p)),
      readlink: rec("readlink", () => "target\xff"),
      access: rec("access", () => undefined),
      mknod: rec("mknod", (p: string, mode: number) => (this.files.set(p, mode), stat(p))),
      mkdir: rec(
        "mkdir",
        (p: string, mode: number, _c: Caller) => (this.files.set(p, 0o040000 | mode), stat(p)),
      ),
      symlink: rec("symlink", (_t: string, p: string) => (this.files.set(p, 0o120777), stat(p))),
      link: rec("link", (_e: string, p: string) => (this.files.set(p, 0o100644), stat(p))),
      unlink: rec("unlink", (p: string) => void this.files.delete(p)),
      rmdir: rec("rmdir", (p: string) => void this.files.delete(p)),
      rename: rec("rename", () => undefined),
      setattr: rec("setattr", (p: string) => stat(p)),
      open: rec("open", () => 7),
      create: rec("create", (p: string, _f: number, mode: number, _c: Caller) => {
        this.files.set(p, 0o100000 | mode);
        return { fh: 8, attr: stat(p) };
      }),
      read: rec("read", (_fh: number, len: number) => Buffer.alloc(Math.min(len, 3), 0x61)),
      write: rec("write", (_fh: number, data: Buffer) => data.length),
      flush: rec("flush", () => undefined),
      fsync: rec("fsync", () => undefined),
      release: rec("release", () => undefined),
      fallocate: unsupported,
      lseek: rec("lseek", (_fh: number, off: bigint) => off + 1n),
      opendir: rec("opendir", () => 3),
      readdir: rec("readdir", (): DirEntry[] =>
        [...this.files.entries()]
          .filter(([p]) => p !== "/")
          .map(([p, mode]) => ({ name: p.slice(1), type: mode & 0o170000, ino: 1n })),
      ),
      releasedir: rec("releasedir", () => undefined),
      prefetchEntries: rec("prefetchEntries", () => undefined),
      statfs: unsupported,
      setxattr: rec("setxattr", () => undefined),
      getxattr: rec("getxattr", () => this.xattr),
      listxattr: rec("listxattr", () => {
        if (this.names instanceof Error) throw this.names;
        return this.names;
      }),
      removexattr: rec("removexattr", () => undefined),
      destroy: rec("destroy", () => undefined),
    };
  }
}

/** Name → inode number of the fuse_dirent records of a READDIR reply. */
function direntInos(body: Buffer): Map<string, bigint> {
  const inos = new Map<string, bigint>();
  for (let at = 0; at < body.length;) {
    const len = body.readUInt32LE(at + 16);
    inos.set(body.toString("latin1", at + 24, at + 24 + len), body.readBigUInt64LE(at));
    at += (24 + len + 7) & ~7;
  }
  return inos;
}

describe("fuse dispatcher", () => {
  let fake: Fake;
  let s: Session;
  let unknown: unknown[];
  const send = (opcode: number, body?: Body, o?: ReqOptions): Outcome =>
    dispatch(s, request(opcode, body, o), (e) => unknown.push(e));
  const ok = (out: Outcome): Buffer => {
    assert.equal(out.errno, 0);
    assert.ok(out.reply);
    return payload(out.reply.parts);
  };

  beforeEach(() => {
    fake = new Fake();
    s = new Session(fake.ops());
    unknown = [];
  });

  it("LOOKUP counts a lookup per reply; FORGET and BATCH_FORGET drop them; no reply for either", () => {
    fake.files.set("/a", 0o100644);
    const id = Number(ok(send(Op.LOOKUP, new Body().name("a"))).readBigUInt64LE(0));
    ok(send(Op.LOOKUP, new Body().name("a")));
    assert.equal(s.table.get(id).lookups, 2);
    assert.equal(send(Op.FORGET, new Body().u64(1), { nodeid: id }).reply, null);
    assert.equal(s.table.get(id).lookups, 1);
    assert.equal(send(Op.BATCH_FORGET, new Body().u32(1).u32(0).u64(id).u64(1)).reply, null);
    assert.equal(s.table.has(id), false);
  });

  it("answers a LOOKUP of a missing name with a cacheable negative entry, and ENOSYS to unknown opcodes", () => {
    const out = send(Op.LOOKUP, new Body().name("missing"));
    assert.equal(out.errno, 0);
    const entry = out.reply?.parts[0] as Buffer;
    assert.equal(entry.readBigUInt64LE(0), 0n, "nodeid 0 marks a negative entry");
    assert.ok(entry.readBigUInt64LE(16) > 0n, "with an entry timeout");
    assert.equal(s.table.size, 1, "no node was made for it");
    assert.equal(send(Op.GETLK).errno, 38);
    assert.equal(send(9999).errno, 38);
  });

  it("turns unknown errors into EIO and reports them; never replies to a failing FORGET", () => {
    fake.files.set("/a", 0o100644);
    const ops = s.ops as { getattr: (p: string) => Attr };
    ops.getattr = () => {
      throw new TypeError("bug");
    };
    assert.equal(send(Op.GETATTR, new Body().u32(0).u32(0).u64(0)).errno, 5);
    assert.equal(unknown.length, 1);
    s.table.forget = () => {
      throw new TypeError("bug");
    };
    assert.equal(send(Op.FORGET, new Body().u64(1), { nodeid: 5 }).reply, null);
  });

  it("passes the caller and mode to create-type ops and undoes a refused CREATE", () => {
    const out = send(Op.CREATE, new Body().u32(0o101).u32(0o100640).u32(0o022).u32(0).name("new"), {
      uid: 5,
      gid: 6,
      pid: 7,
    });
    const bytes = ok(out);
    assert.equal(bytes.length, 128 + 16);
    assert.deepEqual(fake.calls.at(-1), ["create", "/new", 0o101, 0o100640, { uid: 5, gid: 6, pid: 7 }]);
    const id = Number(bytes.readBigUInt64LE(0));
    assert.equal(bytes.readBigUInt64LE(128), 8n, "fh");
    out.reply?.undo?.();
    assert.equal(s.table.has(id), false);
    assert.deepEqual(fake.calls.at(-1), ["release", 8]);
  });

  it("hands the caller's umask to the core only once DONT_MASK is granted (POSIX ACLs: default ACLs win)", () => {
    ok(send(Op.MKDIR, new Body().u32(0o777).u32(0o027).name("before")));
    assert.deepEqual(fake.calls.at(-1), ["mkdir", "/before", 0o777, { uid: 1000, gid: 100, pid: 4242 }]);
    const init = send(
      Op.INIT,
      new Body()
        .u32(7)
        .u32(38)
        .u32(0)
        .u32(Init.DONT_MASK | Init.POSIX_ACL),
    );
    assert.equal(init.errno, 0);
    ok(send(Op.MKDIR, new Body().u32(0o777).u32(0o027).name("d")));
    assert.deepEqual(fake.calls.at(-1), [
      "mkdir",
      "/d",
      0o777,
      { uid: 1000, gid: 100, pid: 4242, umask: 0o027 },
    ]);
    ok(send(Op.MKNOD, new Body().u32(0o100666).u32(0).u32(0o077).u32(0).name("n")));
    assert.deepEqual(fake.calls.at(-1)?.[4], { uid: 1000, gid: 100, pid: 4242, umask: 0o077 });
    ok(send(Op.CREATE, new Body().u32(0o101).u32(0o100666).u32(0o022).u32(0).name("c")));
    assert.deepEqual(fake.calls.at(-1)?.[4], { uid: 1000, gid: 100, pid: 4242, umask: 0o022 });
  });

  it("GETATTR uses the file handle only when FUSE_GETATTR_FH is set", () => {
    ok(send(Op.GETATTR, new Body().u32(0).u32(0).u64(9)));
    assert.deepEqual(fake.calls.at(-1), ["getattr", "/"]);
    ok(send(Op.GETATTR, new Body().u32(1).u32(0).u64(9)));
    assert.deepEqual(fake.calls.at(-1), ["getattr", "/", 9]);
  });

  it("serves attribute requests on a removed, still open file through one of its handles", () => {
    fake.files.set("/a", 0o100644);
    const id = Number(ok(send(Op.LOOKUP, new Body().name("a"))).readBigUInt64LE(0));
    ok(send(Op.OPEN, new Body().u32(2).u32(0), { nodeid: id }));
    ok(send(Op.UNLINK, new Body().name("a")));
    fake.files.set("/a", 0o100644); // the core answers through the handle; the fake ignores it
    ok(send(Op.GETATTR, new Body().u32(0).u32(0).u64(0), { nodeid: id }));
    assert.deepEqual(fake.calls.at(-1), ["getattr", "/a", 7]);
    ok(send(Op.RELEASE, new Body().u64(7).u32(0).u32(0).u64(0), { nodeid: id }));
    assert.equal(send(Op.GETATTR, new Body().u32(0).u32(0).u64(0), { nodeid: id }).errno, 2);
  });

  it("maps path operations 1:1 and keeps the table in step", () => {
    const dir = Number(ok(send(Op.MKDIR, new Body().u32(0o755).u32(0o022).name("d"))).readBigUInt64LE(0));
    const f = Number(
      ok(
        send(Op.MKNOD, new Body().u32(0o100600).u32(0).u32(0).u32(0).name("f"), { nodeid: dir }),
      ).readBigUInt64LE(0),
    );
    assert.equal(s.table.path(f), "/d/f");
    ok(send(Op.RENAME2, new Body().u64(1).u32(1).u32(0).name("d").name("e")));
    assert.deepEqual(fake.calls.at(-1), ["rename", "/d", "/e", 1]);
    assert.equal(s.table.path(f), "/e/f");
    ok(send(Op.UNLINK, new Body().name("f"), { nodeid: dir }));
    assert.deepEqual(fake.calls.at(-1), ["unlink", "/e/f"]);
    assert.equal(s.table.isAttached(f), false);
    assert.equal(ok(send(Op.READLINK, undefined, { nodeid: dir })).toString("latin1"), "target\xff");
  });

  it("READ and WRITE pass offsets and data through", () => {
    assert.equal(
      ok(send(Op.READ, new Body().u64(7).u64(5).u32(4096).u32(0).u64(0).u32(0).u32(0))).toString(),
      "aaa",
    );
    assert.deepEqual(fake.calls.at(-1), ["read", 7, 4096, 5n]);
    const w = send(
      Op.WRITE,
      new Body()
        .u64(7)
        .u64(2n ** 40n)
        .u32(5)
        .u32(0)
        .u64(0)
        .u32(0)
        .u32(0)
        .raw(Buffer.from("hello")),
    );
    assert.equal(ok(w).readUInt32LE(0), 5);
    assert.deepEqual((fake.calls.at(-1) as unknown[]).slice(0, 2), ["write", 7]);
    assert.equal((fake.calls.at(-1) as unknown[])[3], 2n ** 40n);
  });

  it("debug lines name the attribute a GETXATTR asks for (ls -l asks security.selinux of every entry)", () => {
    const line = describeRequest(s, request(Op.GETXATTR, new Body().u32(0).u32(0).name("security.selinux")));
    assert.match(line, /^GETXATTR #42 node=1 "\/ security\.selinux"$/);
  });

  it("GETXATTR/LISTXATTR: size 0 probes, too small is ERANGE, else the bytes", () => {
    const probe = (size: number): Outcome => send(Op.GETXATTR, new Body().u32(size).u32(0).name("user.x"));
    assert.equal(ok(probe(0)).readUInt32LE(0), 10);
    assert.equal(probe(4).errno, 34);
    assert.equal(ok(probe(10)).toString(), "0123456789");
    fake.xattr = undefined;
    assert.equal(probe(0).errno, 61, "no such attribute: ENODATA");
    assert.equal(probe(100).errno, 61);
    const list = (size: number): Outcome => send(Op.LISTXATTR, new Body().u32(size).u32(0));
    assert.equal(ok(list(0)).readUInt32LE(0), 14);
    assert.equal(ok(list(100)).toString(), "user.a\0user.b\0");
  });

  it("GETXATTR of an object without attributes lists it once, then is ENODATA without the core until SETXATTR/REMOVEXATTR (ls -l)", () => {
    fake.files.set("/a", 0o100644);
    const a = Number(ok(send(Op.LOOKUP, new Body().name("a"))).readBigUInt64LE(0));
    const get = (): Outcome =>
      send(Op.GETXATTR, new Body().u32(100).u32(0).name("security.selinux"), { nodeid: a });
    const asked = (): unknown[] => fake.calls.map((c) => c[0]).filter((n) => n !== "getattr");
    fake.names = [];
    fake.xattr = undefined;
    fake.calls = [];
    for (let i = 0; i < 3; i++) assert.equal(get().errno, 61);
    assert.deepEqual(asked(), ["listxattr"]);
    fake.calls = [];
    ok(send(Op.SETXATTR, new Body().u32(2).u32(0).name("user.x").raw(Buffer.from("v1")), { nodeid: a }));
    fake.names = ["user.x"];
    fake.xattr = Buffer.from("v1");
    assert.equal(ok(get()).toString(), "v1", "after SETXATTR the core answers");
    assert.equal(ok(get()).toString(), "v1");
    assert.deepEqual(asked(), ["setxattr", "listxattr", "getxattr", "getxattr"]);
    fake.calls = [];
    ok(send(Op.REMOVEXATTR, new Body().name("user.x"), { nodeid: a }));
    fake.names = [];
    fake.xattr = undefined;
    assert.equal(get().errno, 61);
    assert.equal(get().errno, 61);
    assert.deepEqual(asked(), ["removexattr", "listxattr"]);
  });

  it("GETXATTR goes to the core each time when listxattr fails (noxattrs: EOPNOTSUPP stays EOPNOTSUPP)", () => {
    fake.files.set("/a", 0o100644);
    const a = Number(ok(send(Op.LOOKUP, new Body().name("a"))).readBigUInt64LE(0));
    fake.names = fsError("EOPNOTSUPP");
    const ops = s.ops as { getxattr: (p: string, n: string) => Buffer | undefined };
    ops.getxattr = () => {
      throw fsError("EOPNOTSUPP");
    };
    const get = (): Outcome => send(Op.GETXATTR, new Body().u32(100).u32(0).name("user.y"), { nodeid: a });
    assert.equal(get().errno, 95);
    assert.equal(get().errno, 95);
  });

  it("regression: SETXATTR through one name of a hard-linked file is seen through the other", () => {
    fake.files.set("/a", 0o100644);
    fake.files.set("/b", 0o100644);
    const ops = s.ops as { getattr: (p: string) => Attr };
    const real = ops.getattr;
    ops.getattr = (p) => ({ ...real(p), ino: 555n, nlink: 2 });
    const id = (n: string): number => Number(ok(send(Op.LOOKUP, new Body().name(n))).readBigUInt64LE(0));
    const [a, b] = [id("a"), id("b")];
    assert.notEqual(a, b);
    const get = (node: number): Outcome =>
      send(Op.GETXATTR, new Body().u32(100).u32(0).name("user.x"), { nodeid: node });
    fake.names = [];
    fake.xattr = undefined;
    assert.equal(get(b).errno, 61);
    ok(send(Op.SETXATTR, new Body().u32(2).u32(0).name("user.x").raw(Buffer.from("v1")), { nodeid: a }));
    fake.names = ["user.x"];
    fake.xattr = Buffer.from("v1");
    assert.equal(ok(get(b)).toString(), "v1");
  });

  it("zero-message opendir: OPENDIR is ENOSYS once offered, and READDIR without a handle lists the node", () => {
    fake.files.set("/a", 0o100644);
    assert.equal(send(Op.OPENDIR, new Body().u32(0).u32(0)).errno, 0, "not offered: a handle");
    assert.equal(send(Op.INIT, new Body().u32(7).u32(38).u32(0).u32(Init.NO_OPENDIR_SUPPORT)).errno, 0);
    assert.equal(send(Op.OPENDIR, new Body().u32(0).u32(0)).errno, 38);
    const names = (buf: Buffer): string[] => {
      const out = [];
      for (let at = 0; at < buf.length;) {
        const len = buf.readUInt32LE(at + 16);
        out.push(buf.toString("latin1", at + 24, at + 24 + len));
        at += (24 + len + 7) & ~7;
      }
      return out;
    };
    const readdir = (offset: number): Buffer =>
      ok(send(Op.READDIR, new Body().u64(0).u64(offset).u32(4096).u32(0).u64(0).u32(0).u32(0)));
    const first = readdir(0);
    assert.deepEqual(names(first), [".", "..", "a"]);
    const lastOffset = Number(first.readBigUInt64LE(64 + 8)); // third record: 32 + 32 bytes in
    const calls = fake.calls.length;
    assert.equal(readdir(lastOffset).length, 0, "end of the listing, from the same snapshot");
    assert.equal(fake.calls.length, calls, "no new listing was made");
  });

  it("regression: plain READDIR entries carry the inode number stat reports (never 0xffffffff)", () => {
    fake.files.set("/a", 0o100644);
    fake.files.set("/b", 0o100644);
    const known = ok(send(Op.LOOKUP, new Body().name("b"))).readBigUInt64LE(40); // entry_out attr.ino
    ok(send(Op.INIT, new Body().u32(7).u32(38).u32(0).u32(Init.NO_OPENDIR_SUPPORT)));
    const body = ok(send(Op.READDIR, new Body().u64(0).u64(0).u32(4096).u32(0).u64(0).u32(0).u32(0)));
    const inos = direntInos(body);
    assert.equal(inos.get("a"), fake.ops().getattr("/a").ino, "a name the kernel does not know: the core's");
    assert.equal(inos.get("b"), known, "a name the kernel knows: its node's");
  });

  it("regression: plain READDIR lists a directory the kernel forgot while it still holds a name inside it", () => {
    fake.files.set("/d", 0o040755);
    fake.files.set("/d/f", 0o100644);
    const d = Number(ok(send(Op.LOOKUP, new Body().name("d"))).readBigUInt64LE(0)); // entry_out nodeid
    ok(send(Op.LOOKUP, new Body().name("f"), { nodeid: d }));
    send(Op.FORGET, new Body().u64(1), { nodeid: d }); // d stays in the tree: its path leads to f
    ok(send(Op.INIT, new Body().u32(7).u32(38).u32(0).u32(Init.NO_OPENDIR_SUPPORT)));
    const body = ok(send(Op.READDIR, new Body().u64(0).u64(0).u32(4096).u32(0).u64(0).u32(0).u32(0)));
    const inos = direntInos(body);
    assert.equal(
      inos.get("d"),
      fake.ops().getattr("/d").ino,
      "the core's number: the kernel has no node for d",
    );
  });

  it("regression: after a copy-up, the directories it changed are invalidated (their mtime changed)", () => {
    fake.files.set("/d", 0o040755);
    fake.files.set("/d/f", 0o100644);
    const d = Number(ok(send(Op.LOOKUP, new Body().name("d"))).readBigUInt64LE(0));
    const f = Number(ok(send(Op.LOOKUP, new Body().name("f"), { nodeid: d })).readBigUInt64LE(0));
    let changed: string[] = [];
    (s.ops as { takeChanged?: () => string[] }).takeChanged = () => changed.splice(0);
    ok(send(Op.GETATTR, new Body().u32(0).u32(0).u64(0), { nodeid: f }));
    assert.deepEqual(s.takeStale(), [], "no copy-up: nothing to invalidate");
    const ops = s.ops as { setattr: (...a: unknown[]) => Attr };
    const real = ops.setattr;
    // The core copies /d up (its parent "/" gains an entry), then /d/f (into /d); "/gone" is not known.
    ops.setattr = (...a) => ((changed = ["/", "/d", "/gone"]), real(...a));
    ok(
      send(
        Op.SETATTR,
        new Body()
          .u32(1)
          .u32(0)
          .u64(0)
          .u64(0)
          .u64(0)
          .u64(0)
          .u64(0)
          .u64(0)
          .u32(0)
          .u32(0)
          .u32(0)
          .u32(0o600)
          .u32(0)
          .u32(0)
          .u32(0)
          .u32(0),
        { nodeid: f },
      ),
    );
    assert.deepEqual(s.takeStale().sort(), [1, d].sort());
  });

  it("regression: a write that cleared set-id bits has the node's cached attributes invalidated", () => {
    fake.files.set("/x", 0o104777);
    const x = Number(ok(send(Op.LOOKUP, new Body().name("x"))).readBigUInt64LE(0));
    const fh = ok(send(Op.OPEN, new Body().u32(1).u32(0), { nodeid: x })).readBigUInt64LE(0);
    let cleared = true;
    (s.ops as { killSuidgid?: (fh: number) => boolean }).killSuidgid = () => cleared;
    const write = (flags: number): Outcome =>
      send(Op.WRITE, new Body().u64(fh).u64(0).u32(1).u32(flags).u64(0).u32(0).u32(0).raw(Buffer.from("z")), {
        nodeid: x,
      });
    ok(write(WRITE_KILL_SUIDGID));
    assert.deepEqual(s.takeStale(), [x]);
    ok(write(0));
    assert.deepEqual(s.takeStale(), [], "no KILL_SUIDGID flag: nothing stale");
    cleared = false;
    ok(write(WRITE_KILL_SUIDGID));
    assert.deepEqual(s.takeStale(), [], "no set-id bit was there: nothing stale");
  });

  it("regression: a live node answers one inode number, whatever the core reports for it later", () => {
    fake.files.set("/d", 0o040755);
    const first = ok(send(Op.LOOKUP, new Body().name("d")));
    const d = Number(first.readBigUInt64LE(0));
    const ino = first.readBigUInt64LE(40); // entry_out: nodeid, generation, 2 valid, 2 nsec, then attr
    const ops = s.ops as { getattr: (p: string) => Attr };
    ops.getattr = () => attrFor(0o040755, 999n);
    const attr = ok(send(Op.GETATTR, new Body().u32(0).u32(0).u64(0), { nodeid: d }));
    assert.equal(attr.readBigUInt64LE(16), ino, "GETATTR (attr_out: valid, nsec, dummy, then attr)");
    const again = ok(send(Op.LOOKUP, new Body().name("d")));
    assert.equal(Number(again.readBigUInt64LE(0)), d);
    assert.equal(again.readBigUInt64LE(40), ino, "LOOKUP");
    send(Op.FORGET, new Body().u64(2), { nodeid: d });
    assert.equal(ok(send(Op.LOOKUP, new Body().name("d"))).readBigUInt64LE(40), 999n, "a forgotten node");
  });

  describe("READDIRPLUS", () => {
    const plus = (offset: number, size: number): Outcome =>
      send(Op.READDIRPLUS, new Body().u64(3).u64(offset).u32(size).u32(0).u64(0).u32(0).u32(0));

    function entries(buf: Buffer): { nodeid: number; name: string; off: number }[] {
      const out = [];
      for (let at = 0; at < buf.length;) {
        const namelen = buf.readUInt32LE(at + 128 + 16);
        out.push({
          nodeid: Number(buf.readBigUInt64LE(at)),
          off: Number(buf.readBigUInt64LE(at + 128 + 8)),
          name: buf.toString("latin1", at + 152, at + 152 + namelen),
        });
        at += (152 + namelen + 7) & ~7;
      }
      return out;
    }

    it("sends dot entries without a lookup and counts one lookup per real entry sent", () => {
      fake.files.set("/a", 0o100644);
      fake.files.set("/b", 0o040755);
      const out = plus(0, 4096);
      const got = entries(ok(out));
      assert.deepEqual(
        got.map((e) => [e.name, e.off]),
        [
          [".", 1],
          ["..", 2],
          ["a", 3],
          ["b", 4],
        ],
      );
      assert.equal(got[0]?.nodeid, 0);
      assert.equal(got[1]?.nodeid, 0);
      for (const e of got.slice(2)) assert.equal(s.table.get(e.nodeid).lookups, 1);
      out.reply?.undo?.();
      for (const e of got.slice(2)) assert.equal(s.table.has(e.nodeid), false, "undo forgets them");
    });

    it("tells the union, at the start of a listing only, that its entries are about to be looked up", () => {
      fake.files.set("/a", 0o100644);
      fake.files.set("/b", 0o100644);
      const prefetches = (): unknown[][] => fake.calls.filter((c) => c[0] === "prefetchEntries");
      ok(plus(0, 160 * 3));
      assert.deepEqual(prefetches(), [["prefetchEntries", "/"]]);
      ok(plus(3, 4096));
      assert.equal(prefetches().length, 1, "not again for the rest of the listing");
    });

    it("only looks up entries that fit", () => {
      fake.files.set("/a", 0o100644);
      fake.files.set("/b", 0o100644);
      const got = entries(ok(plus(0, 160 * 3)));
      assert.deepEqual(
        got.map((e) => e.name),
        [".", "..", "a"],
      );
      assert.equal(fake.calls.filter((c) => c[0] === "getattr").length, 1);
      assert.deepEqual(
        entries(ok(plus(3, 4096))).map((e) => e.name),
        ["b"],
      );
      assert.equal(s.table.size, 3);
    });

    it("skips entries that vanished, keeping offsets", () => {
      fake.files.set("/a", 0o100644);
      fake.files.set("/b", 0o100644);
      fake.files.set("/c", 0o100644);
      const ops = s.ops as { getattr: (p: string) => Attr };
      const real = ops.getattr;
      ops.getattr = (p) => {
        if (p === "/b") throw fsError("ENOENT");
        if (p === "/c") throw fsError("EACCES");
        return real(p);
      };
      const got = entries(ok(plus(2, 4096)));
      assert.deepEqual(
        got.map((e) => [e.name, e.off]),
        [
          ["a", 3],
          ["c", 5],
        ],
      );
      assert.equal(got[1]?.nodeid, 0, "a failing lookup goes out without attributes");
    });

    it("sends names the kernel holds fresh without attributes, so its cached ACLs survive (ls -lR GETXATTRs)", () => {
      fake.files.set("/a", 0o100644);
      fake.files.set("/b", 0o040755);
      const first = entries(ok(plus(2, 4096)));
      const a = first[0]?.nodeid ?? 0;
      assert.notEqual(a, 0);
      fake.calls = [];
      const again = entries(ok(plus(2, 4096)));
      assert.deepEqual(
        again.map((e) => [e.name, e.nodeid, e.off]),
        [
          ["a", 0, 3],
          ["b", 0, 4],
        ],
      );
      assert.equal(fake.calls.filter((c) => c[0] === "getattr").length, 0, "no getattr for them");
      assert.equal(s.table.get(a).lookups, 1, "no lookup counted for a name sent without attributes");
      s.table.forget(a, 1);
      assert.deepEqual(
        entries(ok(plus(2, 4096))).map((e) => [e.name, e.nodeid === 0]),
        [
          ["a", false],
          ["b", true],
        ],
        "a forgotten name gets its attributes again",
      );
    });

    it("always sends attributes with short cache timeouts (timeout=0)", () => {
      s = new Session(fake.ops(), { entryTimeout: 0, attrTimeout: 0 });
      fake.files.set("/a", 0o100644);
      entries(ok(plus(2, 4096)));
      assert.notEqual(entries(ok(plus(2, 4096)))[0]?.nodeid, 0);
    });
  });
});
