import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { exportLayer } from "../../../src/image";
import { parsePax } from "../../../src/layer/tar/pax";
import { isLayerXattr, portableCapability } from "../../../src/image/xattrs";
import { lsetxattr } from "../../../src/sys/libc";
import { makeTree, removeTree } from "../../helpers/tmp";

/** name → PAX records (byte strings) of every entry of a plain tar file that has an extended header. */
function paxRecordsByName(file: string): Map<string, Map<string, Buffer>> {
  const tar = fs.readFileSync(file);
  const out = new Map<string, Map<string, Buffer>>();
  let pending: Map<string, Buffer> | undefined;
  for (let off = 0; off + 512 <= tar.length;) {
    const block = tar.subarray(off, off + 512);
    if (block.every((b) => b === 0)) break;
    const size = parseInt(block.toString("ascii", 124, 136).replace(/\0.*$/, "").trim() || "0", 8);
    const type = String.fromCharCode(block[156] as number);
    const body = tar.subarray(off + 512, off + 512 + size);
    if (type === "x") pending = new Map([...parsePax(body)].map(([k, v]) => [k, Buffer.from(v, "latin1")]));
    else {
      const name = block.toString("utf8", 0, 100).replace(/\0.*$/, "");
      if (pending) out.set(pending.get("path")?.toString("utf8") ?? name, pending);
      pending = undefined;
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

describe("image: extended attributes in layers", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) removeTree(d);
  });

  it("layer content: capabilities, ACLs, user.* and trusted.*, never the union's markers or host labels", () => {
    for (const n of ["security.capability", "system.posix_acl_access", "system.posix_acl_default"]) {
      assert.ok(isLayerXattr(n), n);
    }
    for (const n of ["user.mime_type", "trusted.foo"]) assert.ok(isLayerXattr(n), n);
    for (const n of [
      "trusted.overlay.opaque",
      "trusted.overlay.whiteout",
      "user.overlay.opaque",
      "user.fuseoverlayfs.opaque",
      "trusted.unionfs.origin",
      "security.selinux",
      "security.ima",
    ]) {
      assert.ok(!isLayerXattr(n), n);
    }
    // A namespaced (v3) capability is archived as v2, as Docker does.
    const v3 = Buffer.from([0, 0, 0, 3, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe8, 3, 0, 0]);
    const v2 = portableCapability(v3);
    assert.equal(v2.length, 20);
    assert.equal(v2[3], 2);
    assert.deepEqual([...v2.subarray(4)], [...v3.subarray(4, 20)]);
  });

  it("export drops extended attributes: they go out as SCHILY.xattr records, the union's own stay home", async () => {
    const root = makeTree({ up: { ping: "ping\n", d: { f: "f" } } }, "pax");
    dirs.push(root);
    const up = path.join(root, "up");
    const cap = Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    lsetxattr(path.join(up, "ping"), "security.capability", cap, 0);
    lsetxattr(path.join(up, "ping"), "user.color", Buffer.from("blue"), 0);
    lsetxattr(path.join(up, "ping"), "trusted.unionfs.origin", Buffer.from("1:2"), 0);
    lsetxattr(path.join(up, "d"), "trusted.overlay.opaque", Buffer.from("y"), 0);
    lsetxattr(path.join(up, "d"), "trusted.note", Buffer.from([0, 0xff, 0x0a]), 0);
    // An access ACL (user::rwx, user:1234:r--, group::r-x, mask::r-x, other::r-x), binary as the kernel keeps it.
    const acl = Buffer.from(
      [
        "02000000",
        "01000700ffffffff",
        "02000400d2040000",
        "04000500ffffffff",
        "10000500ffffffff",
        "20000500ffffffff",
      ].join(""),
      "hex",
    );
    lsetxattr(path.join(up, "d"), "system.posix_acl_access", acl, 0);
    const tarFile = path.join(root, "l.tar");
    await exportLayer(up, fs.createWriteStream(tarFile));
    const records = paxRecordsByName(tarFile);
    const ping = records.get("ping");
    assert.deepEqual(
      [...(ping?.keys() ?? [])],
      ["SCHILY.xattr.security.capability", "SCHILY.xattr.user.color"],
    );
    assert.ok(ping?.get("SCHILY.xattr.security.capability")?.equals(cap));
    const d = records.get("d/");
    assert.deepEqual(
      [...(d?.keys() ?? [])],
      ["SCHILY.xattr.system.posix_acl_access", "SCHILY.xattr.trusted.note"],
    );
    assert.ok(d?.get("SCHILY.xattr.system.posix_acl_access")?.equals(acl));
    assert.ok(d?.get("SCHILY.xattr.trusted.note")?.equals(Buffer.from([0, 0xff, 0x0a])));
    assert.ok(!records.has("d/f"));
  });
});
