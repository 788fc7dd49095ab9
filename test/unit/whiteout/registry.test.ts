/**
 * src/whiteout: every format read in every layer, one written (with fallbacks), through the layer
 * interface. No mounts.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { openLayer, openWritableDir, type Layer, type WritableLayer } from "../../../src/layer";
import { fromText } from "../../../src/sys/bytes";
import { lsetxattr, mknod } from "../../../src/sys/libc";
import {
  clearWhiteouts,
  hidesName,
  markersOf,
  isOpaque,
  isReservedName,
  isWhiteoutEntry,
  isWhiteoutFormat,
  whiteoutsIn,
  whiteoutWriter,
  WHITEOUT_FORMATS,
} from "../../../src/whiteout";

const S_IFCHR = 0o020000;

describe("whiteout formats (registry)", () => {
  let dir: string;
  let layer: Layer;
  let rw: WritableLayer;
  const at = (rel: string): string => path.join(dir, rel);
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-wh-"));
    rw = openWritableDir(fromText(dir));
    layer = openLayer({ path: fromText(dir), index: 1, writable: false, honoursWhiteouts: true });
  });
  afterEach(() => {
    layer.close();
    rw.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("reads every format: aufs markers, 0/0 devices, xattr whiteouts, opaque markers and xattrs", () => {
    for (const d of ["a", "t", "u", "f", "x"]) fs.mkdirSync(at(d));
    fs.writeFileSync(at("a/.wh.gone"), "");
    fs.writeFileSync(at("a/.wh..wh..opq"), "");
    mknod(at("a/dev"), S_IFCHR, 0);
    lsetxattr(at("t"), "trusted.overlay.opaque", Buffer.from("y"), 0);
    lsetxattr(at("u"), "user.overlay.opaque", Buffer.from("y"), 0);
    lsetxattr(at("f"), "user.fuseoverlayfs.opaque", Buffer.from("y"), 0);
    lsetxattr(at("x"), "trusted.overlay.opaque", Buffer.from("x"), 0);
    fs.writeFileSync(at("x/w"), "");
    lsetxattr(at("x/w"), "trusted.overlay.whiteout", Buffer.from(""), 0);
    fs.writeFileSync(at("x/plain"), "");

    for (const d of ["/a", "/t", "/u", "/f"]) assert.ok(isOpaque(layer, d), `${d} is opaque`);
    assert.equal(isOpaque(layer, "/x"), false, "x is not y");
    assert.deepEqual(markersOf("gone"), [".wh.gone"]);
    assert.deepEqual(markersOf("x".repeat(252)), [], "no room for an aufs marker");
    assert.ok(hidesName(layer, "/a", markersOf("gone")));
    assert.ok(hidesName(layer, "/a", markersOf("gone"), new Map([[".wh.gone", 0]])), "from a cached listing");
    assert.equal(hidesName(layer, "/a", markersOf("other")), false);
    assert.ok(isWhiteoutEntry(layer, "/a", "/a/dev", layer.lstat("/a/dev")));
    assert.ok(isWhiteoutEntry(layer, "/x", "/x/w", layer.lstat("/x/w")));
    assert.equal(isWhiteoutEntry(layer, "/x", "/x/plain", layer.lstat("/x/plain")), false);
    assert.deepEqual([...whiteoutsIn(layer, "/a", layer.readdir("/a"))].sort(), [
      ["dev", "dev"],
      ["gone", ".wh.gone"],
    ]);
    assert.deepEqual([...whiteoutsIn(layer, "/x", layer.readdir("/x"))], [["w", "w"]]);
    assert.ok(isReservedName(".wh.anything") && !isReservedName("wh.x"));
  });

  it("a layer that does not honour whiteouts (rr) has none", () => {
    const rr = openLayer({ path: fromText(dir), index: 2, writable: false, honoursWhiteouts: false });
    try {
      fs.writeFileSync(at(".wh.gone"), "");
      fs.writeFileSync(at(".wh..wh..opq"), "");
      assert.equal(hidesName(rr, "", markersOf("gone")), false);
      assert.equal(isOpaque(rr, ""), false);
      assert.equal(whiteoutsIn(rr, "", rr.readdir("")).size, 0);
    } finally {
      rr.close();
    }
  });

  it("writes the chosen format, another where a name has no room for it, and clears markers", () => {
    assert.deepEqual(WHITEOUT_FORMATS, ["aufs", "overlay"]);
    assert.ok(isWhiteoutFormat("overlay") && !isWhiteoutFormat("toString"));
    const aufs = whiteoutWriter("aufs");
    assert.equal(aufs.whiteOut(rw, "", "n"), ".wh.n");
    const long = "l".repeat(253);
    assert.equal(aufs.whiteOut(rw, "", long), long, "no room for .wh.: a 0/0 device");
    assert.ok(fs.lstatSync(at(long)).isCharacterDevice());
    assert.equal(whiteoutWriter("overlay").whiteOut(rw, "", "m"), "m");
    assert.ok(fs.lstatSync(at("m")).isCharacterDevice());
    clearWhiteouts(rw, "", "n");
    assert.equal(fs.existsSync(at(".wh.n")), false);
    fs.mkdirSync(at("d"));
    whiteoutWriter("overlay").makeOpaque(rw, "/d");
    assert.ok(isOpaque(layer, "/d"));
  });
});
