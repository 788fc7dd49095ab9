/**
 * src/layer: the layer interface as directory layers implement it (open.ts, dir.ts, file.ts). No mounts.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  isWritable,
  openLayer,
  openReadOnly,
  openWritableDir,
  seekFile,
  type LayerFile,
} from "../../../src/layer";
import { fromText } from "../../../src/sys/bytes";

const { O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC, O_EXCL } = fs.constants;

describe("layer: directory layers", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-layer-"));
    fs.mkdirSync(path.join(dir, "ro/d"), { recursive: true });
    fs.writeFileSync(path.join(dir, "ro/d/f"), "hello world");
    fs.symlinkSync("d/f", path.join(dir, "ro/l"));
    fs.mkdirSync(path.join(dir, "rw"));
    fs.mkdirSync(path.join(dir, "work"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reads a read-only layer by relative paths: lstat, readdir, readlink, open → read/fstat/close", () => {
    const layer = openReadOnly(fromText(path.join(dir, "ro")), 3);
    try {
      assert.equal(layer.index, 3);
      assert.equal(layer.writable, false);
      assert.equal(layer.tryLstat("/missing"), undefined);
      assert.equal(layer.tryLstat("/d/f/below"), undefined, "ENOTDIR is 'not here' too");
      assert.equal(layer.lstat("/d/f").size, 11n);
      assert.deepEqual(
        layer
          .readdir("")
          .map((e) => e.name)
          .sort(),
        ["d", "l"],
      );
      assert.equal(layer.readlink("/l"), "d/f");
      const file = layer.open("/d/f");
      try {
        assert.equal(file.read(5, 6n).toString(), "world");
        assert.equal(file.read(100, 11n).length, 0, "empty at end of file");
        assert.equal(file.fstat().size, 11n);
        assert.equal(typeof file.fd, "number", "a directory layer's files have a descriptor");
      } finally {
        file.close();
      }
      assert.throws(() => layer.openAccess("/d/f", O_WRONLY), { code: "EROFS" });
      assert.throws(() => layer.openAccess("/d/f", O_RDONLY | O_TRUNC), { code: "EROFS" });
      assert.equal("mkdir" in layer, false, "a read-only layer has no mutating method");
    } finally {
      layer.close();
    }
  });

  it("writes a writable layer and moves objects between it and a scratch layer", () => {
    const upper = openLayer({
      path: fromText(path.join(dir, "rw")),
      index: 0,
      writable: true,
      honoursWhiteouts: true,
    });
    const work = openWritableDir(fromText(path.join(dir, "work")));
    try {
      if (!isWritable(upper)) throw new Error("openLayer made a read-only layer of a writable spec");
      const file = work.create("/t1", O_RDWR | O_EXCL, 0o640);
      assert.equal(file.write(Buffer.from("abc"), 0n), 3);
      file.close();
      work.setxattr("/t1", "user.k", Buffer.from("v"), 0);
      const w = upper;
      w.moveFrom(work, "/t1", "/f");
      assert.equal(fs.readFileSync(path.join(dir, "rw/f"), "utf8"), "abc");
      assert.equal(upper.tryGetxattr("/f", "user.k")?.toString(), "v");
      assert.equal(upper.tryGetxattr("/f", "user.none"), undefined);
      w.linkFrom(w, "/f", "/g");
      assert.equal(upper.lstat("/g").nlink, 2n);
      w.mkdir("/d", 0o755);
      w.create("/d/x", O_WRONLY, 0o600).close();
      w.removeTree("/d");
      assert.equal(upper.tryLstat("/d"), undefined);
      w.removeTree("/d"); // nothing there: no error
    } finally {
      upper.close();
      work.close();
    }
  });

  it("seekFile answers SEEK_DATA/SEEK_HOLE for a file without a descriptor as for one without holes", () => {
    const noFd: LayerFile = {
      read: () => Buffer.alloc(0),
      readInto: () => 0,
      fstat: () => ({ ...fs.lstatSync(__filename, { bigint: true }), size: 100n }),
      close: () => undefined,
    };
    assert.equal(seekFile(noFd, 10n, 3), 10n);
    assert.equal(seekFile(noFd, 10n, 4), 100n);
    assert.throws(() => seekFile(noFd, 100n, 3), { code: "ENXIO" });
  });
});
