/** Extended attributes in the user., trusted. and security. namespaces, and their copy-up. */
import { strict as assert } from "node:assert";
import { py } from "../../helpers/syscalls";
import { posixCase, type PosixCase } from "./case";
import { fsp, readText } from "./util";

const NAMES = ["user.posix", "trusted.posix", "security.posix"];

/** Python: every non-bookkeeping xattr of A[i] as {name: value}. */
const DUMP = `
def dump(p):
    return {n: os.getxattr(p, n, follow_symlinks=False).decode("latin1")
            for n in sorted(os.listxattr(p, follow_symlinks=False))}
`;

export const xattrCases: PosixCase[] = [
  posixCase({
    area: "xattr",
    name: "user., trusted. and security. xattrs: set, get, list, CREATE/REPLACE flags, remove",
    layout: { lower: { l: "lower", ld: {} } },
    async run(env) {
      await fsp.writeFile(env.at("n"), "new");
      const r = await py(
        `${DUMP}
names = [n.encode() for n in ${JSON.stringify(NAMES)}]
res = {}
for p in A:
    k = os.path.basename(p).decode()
    for n in names:
        res[k + " set " + n.decode()] = attempt(os.setxattr, p, n, b"v1", os.XATTR_CREATE)
        res[k + " create again " + n.decode()] = attempt(os.setxattr, p, n, b"v2", os.XATTR_CREATE)
        res[k + " replace " + n.decode()] = attempt(os.setxattr, p, n, b"value 2", os.XATTR_REPLACE)
    res[k + " replace missing"] = attempt(os.setxattr, p, b"user.missing", b"x", os.XATTR_REPLACE)
    res[k + " get missing"] = attempt(os.getxattr, p, b"user.missing")
    res[k + " empty value"] = attempt(os.setxattr, p, b"user.empty", b"")
    res[k + " dump"] = dump(p)
    res[k + " remove"] = attempt(os.removexattr, p, b"user.posix")
    res[k + " remove missing"] = attempt(os.removexattr, p, b"user.posix")
    res[k + " after"] = sorted(n.decode() if isinstance(n, bytes) else n for n in os.listxattr(p))
out["res"] = res`,
        [env.at("n"), env.at("l"), env.at("ld")],
      );
      const res = r.res as Record<string, unknown>;
      for (const k of ["n", "l", "ld"]) {
        for (const n of NAMES) {
          assert.equal(res[`${k} set ${n}`], "ok", `${k}: set ${n}`);
          assert.equal(res[`${k} create again ${n}`], "EEXIST", `${k}: XATTR_CREATE over ${n}`);
          assert.equal(res[`${k} replace ${n}`], "ok", `${k}: XATTR_REPLACE ${n}`);
        }
        assert.equal(res[`${k} replace missing`], "ENODATA");
        assert.equal(res[`${k} get missing`], "ENODATA");
        assert.equal(res[`${k} empty value`], "ok");
        assert.deepEqual(res[`${k} dump`], {
          "security.posix": "value 2",
          "trusted.posix": "value 2",
          "user.empty": "",
          "user.posix": "value 2",
        });
        assert.equal(res[`${k} remove`], "ok");
        assert.equal(res[`${k} remove missing`], "ENODATA");
        assert.deepEqual(res[`${k} after`], ["security.posix", "trusted.posix", "user.empty"]);
      }
      assert.equal(await readText(env.at("l")), "lower");
    },
  }),
  posixCase({
    area: "xattr",
    name: "copy-up keeps xattrs of files and directories (all namespaces)",
    layout: {
      lower: { f: "data", d: { g: "g" } },
      prepareLower: async (dir) => {
        await py(
          `for p in (A[0], A[1], A[2]):
    for n in (b"user.a", b"trusted.b", b"security.c"):
        os.setxattr(p, n, b"val of " + n)`,
          [`${dir}/f`, `${dir}/d`, `${dir}/d/g`],
        );
      },
    },
    async run(env) {
      await fsp.appendFile(env.at("f"), "+"); // data copy-up
      await fsp.writeFile(env.at("d/new"), "n"); // directory copy-up
      await fsp.chmod(env.at("d/g"), 0o600); // metadata copy-up
      const want = {
        "security.c": "val of security.c",
        "trusted.b": "val of trusted.b",
        "user.a": "val of user.a",
      };
      for (const dir of [env.root, env.upperDir]) {
        const r = await py(`${DUMP}\nout["r"] = [dump(p) for p in A]`, [
          `${dir}/f`,
          `${dir}/d`,
          `${dir}/d/g`,
        ]);
        const shown = (r.r as Array<Record<string, string>>).map((x) =>
          Object.fromEntries(Object.entries(x).filter(([n]) => !/^trusted\.(overlay|unionfs)\./.test(n))),
        );
        assert.deepEqual(
          shown,
          [want, want, want],
          `xattrs seen in ${dir === env.root ? "the mount" : "the upper branch"}`,
        );
      }
    },
  }),
];
