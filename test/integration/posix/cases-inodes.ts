/** Hard links, inode numbers and timestamps. */
import { strict as assert } from "node:assert";
import { py } from "../../helpers/syscalls";
import { posixCase, type PosixCase } from "./case";
import { code, fsp, inoViews, lstat, nextTick, readText, setTimesNs, USER } from "./util";

const T1 = 1_234_567_890_123_456_789n;
const T2 = 1_111_111_111_987_654_321n;

export const inodeCases: PosixCase[] = [
  posixCase({
    area: "links",
    name: "hard link to a lower file: one inode, nlink 2, a write through one name shows through the other",
    layout: { lower: { f: "shared\n" } },
    async run(env) {
      const ino = (await lstat(env.at("f"))).ino;
      await fsp.link(env.at("f"), env.at("g"));
      const sf = await lstat(env.at("f"));
      const sg = await lstat(env.at("g"));
      assert.equal(sf.ino, sg.ino, "both names are one inode");
      assert.equal(sf.ino, ino, "the inode number did not change");
      assert.equal(sf.nlink, 2);
      assert.equal(sg.nlink, 2);
      await fsp.appendFile(env.at("g"), "via g\n");
      assert.equal(await readText(env.at("f")), "shared\nvia g\n");
      const h = await fsp.open(env.at("f"), "r+");
      await h.write("SHARED", 0);
      await h.close();
      assert.equal(await readText(env.at("g")), "SHARED\nvia g\n");
      await fsp.unlink(env.at("f"));
      assert.equal((await lstat(env.at("g"))).nlink, 1);
    },
  }),
  posixCase({
    area: "links",
    name: "st_ino stays the same across copy-up (file data, file metadata, directory) and a remount",
    layout: { lower: { f: "x", m: "meta", d: { g: "y" } } },
    async run(env) {
      const names = ["f", "m", "d", "d/g"];
      const before = new Map<string, bigint>();
      for (const n of names) before.set(n, (await lstat(env.at(n))).ino);
      await fsp.appendFile(env.at("f"), "more");
      await fsp.chmod(env.at("m"), 0o600);
      await fsp.writeFile(env.at("d/new"), "n");
      await fsp.chmod(env.at("d/g"), 0o640);
      const check = async (when: string) => {
        for (const n of names) assert.equal((await lstat(env.at(n))).ino, before.get(n), `${n} ${when}`);
      };
      await check("after copy-up");
      // readdir's d_ino agrees with st_ino.
      const r = await py<{ ents: Record<string, string> }>(
        `out["ents"] = {e.name: str(e.inode()) for e in os.scandir(A[0])}`,
        [env.root],
      );
      for (const n of ["f", "m", "d"]) assert.equal(BigInt(r.ents[n] ?? -1), before.get(n), `d_ino of ${n}`);
      await env.remount();
      await check("after a remount");
    },
  }),
  posixCase({
    area: "links",
    name: "lower files keep their st_ino (any stat mask) through copy-up and rename, their directory too, and after a remount",
    layout: { lower: { f: "F", g: "G", dir: { h: "H" } } },
    async run(env) {
      const before = await inoViews(["f", "g", "dir", "dir/h"].map((n) => env.at(n)));
      await fsp.chmod(env.at("f"), 0o600);
      await fsp.rename(env.at("g"), env.at("g2"));
      await fsp.rename(env.at("dir/h"), env.at("h2"));
      const now = ["f", "g2", "dir", "h2"].map((n) => env.at(n));
      assert.deepEqual(await inoViews(now), before, "after copy-up and rename");
      await env.remount();
      assert.deepEqual(await inoViews(now), before, "after a remount");
    },
  }),
  posixCase({
    area: "times",
    name: "nanosecond timestamps round-trip through utimensat (new and lower files)",
    layout: { lower: { l: "lower" } },
    async run(env) {
      await fsp.writeFile(env.at("n"), "new");
      for (const f of ["n", "l"]) {
        await setTimesNs(env.at(f), T1, T2);
        const st = await lstat(env.at(f));
        assert.equal(st.atimeNs, T1, `atime of ${f}`);
        assert.equal(st.mtimeNs, T2, `mtime of ${f}`);
      }
    },
  }),
  posixCase({
    area: "times",
    name: "copy-up keeps a lower file's atime and mtime to the nanosecond",
    layout: {
      lower: { f: "data", g: "data" },
      prepareLower: async (dir) => {
        await setTimesNs(`${dir}/f`, T1, T2);
        await setTimesNs(`${dir}/g`, T1, T2);
      },
    },
    async run(env) {
      await fsp.chmod(env.at("f"), 0o600); // metadata-only copy-up
      const st = await lstat(env.at("f"));
      assert.equal(st.mtimeNs, T2);
      assert.equal(st.atimeNs, T1);
      // Opening for writing copies the data up; the times stay until something is written.
      const h = await fsp.open(env.at("g"), "r+");
      assert.equal((await lstat(env.at("g"))).mtimeNs, T2);
      await h.write("D", 0);
      await h.close();
      assert.notEqual((await lstat(env.at("g"))).mtimeNs, T2, "a write sets mtime");
    },
  }),
  posixCase({
    area: "times",
    name: "utimensat UTIME_NOW and UTIME_OMIT set one time and leave the other",
    layout: { lower: { f: "x" } },
    async run(env) {
      await setTimesNs(env.at("f"), T1, T2);
      const before = BigInt(Date.now() - 2000) * 1_000_000n;
      const r = await py(
        `out["a"] = attempt(utimensat, A[0], None, "now")
out["sa"] = st(A[0])
out["b"] = attempt(utimensat, A[0], "now", None)
out["sb"] = st(A[0])
out["c"] = attempt(utimensat, A[0], None, None)
out["sc"] = st(A[0])`,
        [env.at("f")],
      );
      type S = { atime: string; mtime: string };
      const sa = r.sa as S;
      const sb = r.sb as S;
      const sc = r.sc as S;
      assert.equal(r.a, "ok");
      assert.equal(BigInt(sa.atime), T1, "UTIME_OMIT left atime");
      assert.ok(BigInt(sa.mtime) > before, "UTIME_NOW set mtime to now");
      assert.equal(r.b, "ok");
      assert.ok(BigInt(sb.atime) > before, "UTIME_NOW set atime to now");
      assert.equal(sb.mtime, sa.mtime, "UTIME_OMIT left mtime");
      assert.equal(r.c, "ok");
      assert.deepEqual([sc.atime, sc.mtime], [sb.atime, sb.mtime], "both UTIME_OMIT change nothing");
    },
  }),
  posixCase({
    area: "times",
    name: "utimensat by a non-owner: UTIME_NOW needs write permission, explicit times need ownership",
    layout: {
      lower: { w: "x", r: "x", mine: "x" },
      prepareLower: async (dir) => {
        await fsp.chmod(`${dir}/w`, 0o666);
        await fsp.chmod(`${dir}/r`, 0o644);
        await fsp.chown(`${dir}/mine`, USER, USER);
      },
    },
    async run(env) {
      const r = await py(
        `out["w_now"] = attempt(utimensat, A[0], "now", "now")
out["w_set"] = attempt(utimensat, A[0], 5, 5)
out["r_now"] = attempt(utimensat, A[1], "now", "now")
out["mine_set"] = attempt(utimensat, A[2], 5000000000, 6000000000)
out["mine"] = st(A[2])`,
        [env.at("w"), env.at("r"), env.at("mine")],
        { uid: USER },
      );
      assert.equal(r.w_now, "ok", "UTIME_NOW on a file the caller may write");
      assert.equal(r.w_set, "EPERM", "explicit times on a file the caller does not own");
      assert.equal(r.r_now, "EACCES", "UTIME_NOW without write permission");
      assert.equal(r.mine_set, "ok", "the owner may set any time");
      assert.equal((r.mine as { mtime: string }).mtime, "6000000000");
    },
  }),
  posixCase({
    area: "times",
    name: "ctime moves on chmod, chown, link, rename, truncate and write; mtime only on data changes",
    layout: { lower: { f: "0123456789" } },
    async run(env) {
      let path = env.at("f");
      let last = await lstat(path);
      const step = async (what: string, fn: () => Promise<unknown>, mtimeChanges: boolean) => {
        await nextTick();
        await fn();
        const now = await lstat(path);
        assert.ok(now.ctimeNs > last.ctimeNs, `${what} moves ctime (${last.ctimeNs} -> ${now.ctimeNs})`);
        if (mtimeChanges) assert.ok(now.mtimeNs > last.mtimeNs, `${what} moves mtime`);
        else assert.equal(now.mtimeNs, last.mtimeNs, `${what} leaves mtime`);
        last = now;
      };
      await step("chmod", () => fsp.chmod(path, 0o600), false);
      await step("chown", () => fsp.chown(path, USER, USER), false);
      await step("link", () => fsp.link(path, env.at("f2")), false);
      await step("rename", () => fsp.rename(path, env.at("g")).then(() => (path = env.at("g"))), false);
      await step("truncate", () => fsp.truncate(path, 4), true);
      await step("write", () => fsp.appendFile(path, "w"), true);
      assert.equal(await code(fsp.access(env.at("f"))), "ENOENT");
    },
  }),
];
