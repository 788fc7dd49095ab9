/** statfs, open-file consistency across copy-up and unlink, readdir under concurrent change. */
import { strict as assert } from "node:assert";
import { py } from "../../helpers/syscalls";
import { posixCase, type PosixCase } from "./case";
import { code, fsp, ls, lstat, readText } from "./util";

const STATVFS = `
def sv(p):
    s = os.statvfs(p)
    return {"bsize": s.f_bsize, "blocks": s.f_blocks, "files": s.f_files, "namemax": s.f_namemax}
`;

/** Names for the readdir case: long enough that the listing needs several getdents calls. */
function manyNames(prefix: string, n: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < n; i++) out[`${prefix}${String(i).padStart(5, "0")}${"_".repeat(50)}`] = "";
  return out;
}

export const miscCases: PosixCase[] = [
  posixCase({
    area: "misc",
    name: "statfs of the mount reports the writable branch's filesystem",
    layout: { upperOnTmpfs: true, lower: { f: "x" } },
    async run(env) {
      const r = await py(`${STATVFS}\nout["mnt"] = sv(A[0]); out["upper"] = sv(A[1])`, [
        env.root,
        env.upperDir,
      ]);
      assert.deepEqual(r.mnt, r.upper);
    },
  }),
  posixCase({
    area: "misc",
    name: "a read-only descriptor opened before copy-up sees data written afterwards",
    layout: { lower: { f: "old contents" } },
    async run(env) {
      const ro = await fsp.open(env.at("f"), "r");
      try {
        const buf = Buffer.alloc(64);
        await ro.read(buf, 0, 3, 0);
        await fsp.writeFile(env.at("f"), "new contents, longer");
        const { bytesRead } = await ro.read(buf, 0, 64, 0);
        assert.equal(buf.subarray(0, bytesRead).toString(), "new contents, longer");
        assert.equal((await ro.stat()).size, 20, "fstat of the old descriptor shows the new size");
      } finally {
        await ro.close();
      }
    },
  }),
  posixCase({
    area: "misc",
    name: "an open file that was unlinked stays usable: read, write, fstat, ftruncate, fchmod",
    layout: { lower: { f: "lower data" } },
    async run(env) {
      for (const name of ["f", "n"]) {
        if (name === "n") await fsp.writeFile(env.at("n"), "upper data");
        const h = await fsp.open(env.at(name), "r+");
        try {
          await fsp.unlink(env.at(name));
          assert.equal(await code(fsp.lstat(env.at(name))), "ENOENT");
          assert.equal((await h.stat()).nlink, 0, `${name}: nlink 0 once unlinked`);
          await h.write("W", 0);
          const buf = Buffer.alloc(20);
          const { bytesRead } = await h.read(buf, 0, 20, 0);
          assert.equal(buf.subarray(0, bytesRead).toString().slice(0, 5), name === "f" ? "Wower" : "Wpper");
          assert.equal(await code(h.truncate(3)), "ok", `${name}: ftruncate`);
          assert.equal((await h.stat()).size, 3);
          assert.equal(await code(h.chmod(0o600)), "ok", `${name}: fchmod`);
          assert.equal((await h.stat()).mode & 0o777, 0o600);
        } finally {
          await h.close();
        }
      }
      assert.deepEqual(await ls(env.root), []);
    },
  }),
  posixCase({
    area: "misc",
    name: "a file replaced by rename stays readable through a descriptor opened before",
    layout: { lower: { old: "old data", repl: "replacement" } },
    async run(env) {
      const h = await fsp.open(env.at("old"), "r");
      try {
        await fsp.rename(env.at("repl"), env.at("old"));
        const buf = Buffer.alloc(20);
        const { bytesRead } = await h.read(buf, 0, 20, 0);
        assert.equal(buf.subarray(0, bytesRead).toString(), "old data");
      } finally {
        await h.close();
      }
      assert.equal(await readText(env.at("old")), "replacement");
    },
  }),
  posixCase({
    area: "misc",
    name: "readdir while the directory changes: names present throughout are seen exactly once",
    layout: { lower: { big: manyNames("low", 1200) }, upper: { big: manyNames("up", 400) } },
    async run(env) {
      const r = await py(
        `d = os.fsdecode(A[0])
it = os.scandir(d)
seen = []
for e in it:
    seen.append(e.name)
    if len(seen) == 150:
        break
names = sorted(os.listdir(d))
victims = [n for n in names if n not in set(seen)][::3][:300]
for n in victims: os.unlink(os.path.join(d, n))
for i in range(300): open(os.path.join(d, "new%05d" % i), "w").close()
for e in it: seen.append(e.name)
it.close()
out["seen"] = seen
out["victims"] = victims
out["before"] = names`,
        [env.at("big")],
        { timeoutMs: 60_000 },
      );
      const seen = r.seen as string[];
      const victims = new Set(r.victims as string[]);
      const before = r.before as string[];
      const counts = new Map<string, number>();
      for (const n of seen) counts.set(n, (counts.get(n) ?? 0) + 1);
      const dups = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
      assert.deepEqual(dups.slice(0, 5), [], "no name is returned twice");
      const missing = before.filter((n) => !victims.has(n) && !counts.has(n));
      assert.deepEqual(missing.slice(0, 5), [], "every name that stayed is returned");
      assert.equal(before.length, 1600);
      assert.equal((await ls(env.at("big"))).length, 1600);
      assert.ok((await lstat(env.at("big"))).mode > 0);
    },
  }),
];
