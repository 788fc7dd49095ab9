import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  buildInitLayer,
  hostsFile,
  initLayerEntries,
  runMountpoints,
  withInitLayer,
} from "../../../src/mountns/initlayer";
import { formatBranches, parseBranches } from "../../../src/unionfs/branches";
import { dir, makeTempDir, makeTree, removeTree } from "../../helpers/tmp";

describe("the init layer", () => {
  const made: string[] = [];
  afterEach(() => made.splice(0).forEach(removeTree));

  it("lists /etc/hosts, /etc/hostname, /etc/resolv.conf and the mount points, parents first", () => {
    const entries = initLayerEntries({
      hostname: "box",
      resolvConf: "nameserver 10.0.0.2\n",
      mountpoints: ["/proc", "/dev", "/run/lock/"],
    });
    assert.deepEqual(
      entries.map((e) => `${e.type} ${e.path}`),
      [
        "dir dev",
        "dir etc",
        "dir proc",
        "dir run",
        "dir run/lock",
        "file etc/hosts",
        "file etc/hostname",
        "file etc/resolv.conf",
      ],
    );
    const content = (p: string): unknown => entries.find((e) => e.path === p && e.type === "file");
    assert.deepEqual(content("etc/hostname"), { type: "file", path: "etc/hostname", content: "box\n" });
    assert.match(hostsFile("box"), /^127\.0\.0\.1\tlocalhost\n.*\n127\.0\.1\.1\tbox\n$/s);
    assert.deepEqual(runMountpoints(false), ["/proc", "/dev"]);
    assert.deepEqual(runMountpoints(true), ["/proc", "/dev", "/sys"]);
  });

  it("refuses a mount point that is not an absolute path below /", () => {
    for (const bad of ["proc", "/", "", "/a/..", "//"]) {
      assert.throws(
        () => initLayerEntries({ hostname: "h", resolvConf: "", mountpoints: [bad] }),
        /not an absolute path/,
        bad,
      );
    }
  });

  it("builds the layer in an empty directory; its directories take the image's attributes", () => {
    const lower = makeTree({ etc: dir({ passwd: "root:x:0:0::/root:/bin/sh\n" }, 0o711) }, "init-lower");
    made.push(lower);
    const when = new Date("2001-02-03T04:05:06Z");
    fs.utimesSync(path.join(lower, "etc"), when, when);
    const work = makeTempDir("init-layer");
    made.push(work);
    const init = path.join(work, "init");
    buildInitLayer(init, {
      hostname: "box",
      resolvConf: Buffer.from("nameserver ::1\n"),
      mountpoints: ["/proc", "/dev"],
      lowers: [path.join(work, "absent"), lower],
    });
    assert.deepEqual(fs.readdirSync(init).sort(), ["dev", "etc", "proc"]);
    assert.deepEqual(fs.readdirSync(path.join(init, "etc")).sort(), ["hostname", "hosts", "resolv.conf"]);
    assert.equal(fs.readFileSync(path.join(init, "etc/resolv.conf"), "utf8"), "nameserver ::1\n");
    const etc = fs.statSync(path.join(init, "etc"));
    assert.equal(etc.mode & 0o7777, 0o711, "/etc keeps the image's mode");
    assert.equal(etc.mtime.getTime(), when.getTime(), "/etc keeps the image's mtime");
    assert.equal(fs.statSync(path.join(init, "proc")).mode & 0o7777, 0o755);
    assert.equal(fs.statSync(path.join(init, "etc/hosts")).mode & 0o7777, 0o644);
    assert.throws(
      () => buildInitLayer(init, { hostname: "x", resolvConf: "", mountpoints: [] }),
      /not empty/,
    );
  });

  it("goes right under the writable top branch, or on top of a read-only union; round-trips as a list", () => {
    const rw = parseBranches("/c/rw:/img/b:/img/a", "/");
    assert.equal(formatBranches(withInitLayer(rw, "/run dir/in:it")), "/c/rw:/run dir/in\\:it:/img/b:/img/a");
    const ro = parseBranches("/img/b=ro:/img/a=rr", "/");
    assert.equal(formatBranches(withInitLayer(ro, "/i")), "/i=ro:/img/b:/img/a=rr");
    const odd = [
      { path: "/a=b\\c:d", mode: "rw" as const },
      { path: "/e", mode: "rr" as const },
    ];
    assert.deepEqual(parseBranches(formatBranches(odd), "/"), odd);
  });
});
