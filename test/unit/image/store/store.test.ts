/**
 * The image store without mounts: load (docker-archive, OCI layout, as directories, files and streams),
 * shared layers, refusals that leave the store as it was, images, rmi, containers, commit and save.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { extract, list } from "tar";
import { ImageStore, normalizeName } from "../../../../src/image/store";
import { lsetxattr, mknod } from "../../../../src/sys/libc";
import { UsageError } from "../../../../src/errors";
import { Progress } from "../../../../src/image/progress";
import { makeTempDir, removeTree } from "../../../helpers/tmp";
import { buildLayout, sha256hex, tarLayout, type ArchiveSpec } from "../../../helpers/image-archives";

const S_IFCHR = 0o020000;

const BASE = {
  etc: { passwd: "root:x:0:0::/root:/bin/sh\n", doomed: "x\n" },
  d: { old: "old\n", sub: { deep: "deep\n" } },
  bin: { sh: "#!fake shell\n" },
};
const APP = { app: { conf: "app\n" }, etc: { ".wh.doomed": "" } };
const OTHER = { other: "other\n", d: { ".wh..wh..opq": "", fresh: "fresh\n" } };

function usage(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes("\n"), err.message);
    return true;
  };
}

describe("image store", function () {
  this.timeout(30_000);
  let tmp: string;
  let store: ImageStore;
  let n = 0;

  beforeEach(() => {
    tmp = makeTempDir("store");
    store = new ImageStore({ dir: path.join(tmp, "store") });
  });
  afterEach(() => removeTree(tmp));

  function layout(spec: ArchiveSpec): ReturnType<typeof buildLayout> {
    n += 1;
    return buildLayout(spec, path.join(tmp, `layout${n}`), path.join(tmp, `work${n}`));
  }
  const layerDirs = (): string[] => fs.readdirSync(path.join(store.dir, "overlay2")).filter((d) => d !== "l");
  const chains = (): string[] =>
    fs.readdirSync(path.join(store.dir, "image", "overlay2", "layerdb", "sha256"));
  const tmpLeft = (): string[] => fs.readdirSync(path.join(store.dir, "tmp"));

  it("loads a docker-archive into Docker's layout: layerdb by chain ID, overlay2 dirs, names", async () => {
    const a = layout({ format: "docker-archive", layers: [BASE, APP], name: "localhost/app:1" });
    const [loaded] = await store.load({ file: tarLayout(a.dir, path.join(tmp, "a.tar")) });
    assert.deepEqual(loaded, { id: a.id, names: ["localhost/app:1"], unpacked: 2, shared: 0 });
    const meta = path.join(store.dir, "image", "overlay2");
    assert.equal(
      fs.readFileSync(path.join(meta, "imagedb", "content", "sha256", a.id.slice(7))).toString(),
      a.config.toString(),
    );
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(meta, "repositories.json"), "utf8")), {
      Repositories: { "localhost/app": { "localhost/app:1": a.id } },
    });
    const base = path.join(meta, "layerdb", "sha256", a.diffIds[0]!.slice(7));
    assert.equal(fs.readFileSync(path.join(base, "diff"), "utf8"), a.diffIds[0]);
    assert.ok(!fs.existsSync(path.join(base, "parent")));
    const top = path.join(meta, "layerdb", "sha256", sha256hex(`${a.diffIds[0]} ${a.diffIds[1]}`));
    assert.equal(fs.readFileSync(path.join(top, "parent"), "utf8"), a.diffIds[0]);
    // The top layer's dir: overlay-format whiteout, a lower file of l/ links to the base.
    const dir = path.join(store.dir, "overlay2", fs.readFileSync(path.join(top, "cache-id"), "utf8"));
    const wh = fs.lstatSync(path.join(dir, "diff", "etc", "doomed"));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0);
    const baseDir = path.join(store.dir, "overlay2", fs.readFileSync(path.join(base, "cache-id"), "utf8"));
    const lower = fs.readFileSync(path.join(dir, "lower"), "utf8");
    assert.equal(lower, `l/${fs.readFileSync(path.join(baseDir, "link"), "utf8")}`);
    assert.equal(fs.realpathSync(path.join(store.dir, "overlay2", lower)), path.join(baseDir, "diff"));
    assert.equal(fs.readFileSync(path.join(baseDir, "diff", "d", "sub", "deep"), "utf8"), "deep\n");
    assert.deepEqual(tmpLeft(), []);
    const [info] = await store.images();
    assert.deepEqual([info?.names, info?.layers], [["localhost/app:1"], 2]);
    assert.ok((info?.size ?? 0) > 0);
  });

  it("unpacks a base layer once for two images (an OCI layout and an oci-archive from a stream)", async () => {
    const a = layout({ format: "oci", layers: [BASE, APP], name: "localhost/app:1" });
    const b = layout({ format: "oci", layers: [BASE, OTHER], name: "other" });
    await store.load({ dir: a.dir });
    const tar = tarLayout(b.dir, path.join(tmp, "b.tar"));
    const [loaded] = await store.load({ stream: fs.createReadStream(tar), label: "stdin" });
    assert.deepEqual(loaded, { id: b.id, names: ["other:latest"], unpacked: 1, shared: 1 });
    assert.equal(chains().length, 3);
    assert.equal(layerDirs().length, 3);
    // Loading again unpacks nothing.
    const [again] = await store.load({ dir: a.dir });
    assert.deepEqual([again?.unpacked, again?.shared], [0, 2]);
    assert.equal(layerDirs().length, 3);
    // The opaque directory of OTHER is an overlay-format one.
    const image = await store.image("other");
    assert.equal(image.id, b.id);
  });

  it("refuses a layer whose content does not match its diff ID, and leaves nothing", async () => {
    const a = layout({ format: "docker-archive", layers: [BASE, APP], name: "app" });
    const manifest = JSON.parse(fs.readFileSync(path.join(a.dir, "manifest.json"), "utf8"));
    const top = path.join(a.dir, manifest[0].Layers[1]);
    const bytes = fs.readFileSync(top);
    bytes[bytes.indexOf("app\n")] = "A".charCodeAt(0);
    fs.writeFileSync(top, bytes);
    await assert.rejects(
      store.load({ dir: a.dir }),
      usage(/layer 2 of app: its diff ID is sha256:\w+, the image config says/),
    );
    assert.equal(chains().length, 1, "the intact base layer stays (shared by a later load)");
    assert.deepEqual(await store.images(), []);
    assert.deepEqual(tmpLeft(), []);
  });

  it("refuses a blob whose digest does not match its manifest", async () => {
    const a = layout({ format: "oci", layers: [BASE], name: "app" });
    const index = JSON.parse(fs.readFileSync(path.join(a.dir, "index.json"), "utf8"));
    const manifest = JSON.parse(
      fs.readFileSync(path.join(a.dir, "blobs", "sha256", index.manifests[0].digest.slice(7)), "utf8"),
    );
    const blob = path.join(a.dir, "blobs", "sha256", manifest.layers[0].digest.slice(7));
    fs.appendFileSync(blob, "junk");
    await assert.rejects(store.load({ dir: a.dir }), usage(/its digest is sha256:\w+, the manifest says/));
    assert.deepEqual(await store.images(), []);
  });

  it("refuses what is not an image archive with one line", async () => {
    const layer = path.join(tmp, "layer");
    fs.mkdirSync(layer);
    fs.writeFileSync(path.join(layer, "f"), "x");
    await assert.rejects(
      store.load({ file: tarLayout(layer, path.join(tmp, "l.tar")) }),
      usage(/not an image archive.*unionfs-ts import/),
    );
    const junk = path.join(tmp, "junk");
    fs.writeFileSync(junk, "this is no tar at all".repeat(100));
    await assert.rejects(store.load({ file: junk }), usage(/is not a tar archive/));
    await assert.rejects(store.load({ file: path.join(tmp, "missing") }), usage(/does not exist/));
    assert.deepEqual(tmpLeft(), []);
  });

  it("finds images by name, with :latest, under localhost/, and by ID prefix", async () => {
    const a = layout({ format: "docker-archive", layers: [BASE], name: "localhost/app:latest" });
    await store.load({ dir: a.dir });
    for (const ref of ["app", "app:latest", "localhost/app", a.id, a.id.slice(7, 19)]) {
      assert.equal((await store.image(ref)).id, a.id, ref);
    }
    await assert.rejects(store.image("nope"), usage(/no image 'nope'/));
    assert.throws(() => normalizeName("Bad Name"), usage(/not a valid image name/));
    assert.equal(normalizeName("registry:5000/a/b"), "registry:5000/a/b:latest");
  });

  it("saves an image as an oci-archive with the same image ID, which loads into another store", async () => {
    const a = layout({ format: "docker-archive", layers: [BASE, APP], name: "localhost/app:1" });
    await store.load({ dir: a.dir });
    const out = path.join(tmp, "saved.tar");
    assert.equal(await store.save("app:1", { file: out }), a.id);
    const other = new ImageStore({ dir: path.join(tmp, "store2") });
    const [loaded] = await other.load({ file: out });
    assert.deepEqual([loaded?.id, loaded?.names], [a.id, ["localhost/app:1"]]);
  });

  it("regression: save's progress said '0 entries' (it streams whole blobs): it counts the layers", async () => {
    const a = layout({ format: "docker-archive", layers: [BASE, APP], name: "localhost/app:1" });
    await store.load({ dir: a.dir });
    let drawn = "";
    const stream = { isTTY: true, columns: 200, write: (text: string) => ((drawn += text), true) };
    const progress = new Progress("save app:1", { stream });
    await store.save("app:1", { file: path.join(tmp, "saved.tar") }, { progress });
    progress.done();
    assert.match(drawn, /save app:1: [\d.]+ \w+, 2 layers in \d+s/);
    assert.doesNotMatch(drawn, /entries/);
  });

  it("exports a layer anew (new diff ID, with a warning) when its files no longer give its tar", async () => {
    const a = layout({ format: "docker-archive", layers: [BASE], name: "app" });
    await store.load({ dir: a.dir });
    const cacheId = fs.readFileSync(
      path.join(store.dir, "image", "overlay2", "layerdb", "sha256", a.diffIds[0]!.slice(7), "cache-id"),
      "utf8",
    );
    fs.writeFileSync(path.join(store.dir, "overlay2", cacheId, "diff", "d", "old"), "OLD\n");
    const warnings: string[] = [];
    const id = await store.save(
      "app",
      { file: path.join(tmp, "saved.tar") },
      { onWarning: (w) => warnings.push(w) },
    );
    assert.notEqual(id, a.id);
    assert.match(warnings.join("\n"), /layer 1 cannot be rebuilt as loaded/);
  });

  it("commits a container's writable layer (whiteouts as .wh. entries, no init layer) on its image", async () => {
    const a = layout({ format: "docker-archive", layers: [BASE], name: "app" });
    await store.load({ dir: a.dir });
    const c = await store.createContainer("app", { name: "c1", command: ["sh"], keep: true });
    assert.equal((await store.containers())[0]?.running, true, "recorded as run by this process");
    const { rw, init, layers, workdir } = store.containerMount(c);
    assert.equal(layers.length, 1, "the image's layer");
    assert.ok(rw.endsWith(`${c.mountId}/diff`));
    assert.ok(init.endsWith(`${c.mountId}-init/diff`));
    assert.deepEqual(fs.readdirSync(init), [], "run fills the init layer");
    assert.ok(workdir.endsWith(`${c.mountId}/work`));
    // What a program would have written through the union (overlay format).
    fs.writeFileSync(path.join(rw, "added"), "added\n");
    fs.mkdirSync(path.join(rw, "etc"));
    mknod(path.join(rw, "etc", "doomed"), S_IFCHR, 0);
    fs.mkdirSync(path.join(rw, "d"));
    lsetxattr(path.join(rw, "d"), "trusted.overlay.opaque", Buffer.from("y"), 0);
    fs.writeFileSync(path.join(rw, "d", "f"), "new\n");
    await assert.rejects(store.commit("c1", "app:2"), usage(/is running/));
    await store.containerEnded(c);
    const [ended] = await store.containers();
    assert.deepEqual([ended?.name, ended?.running], ["c1", false]);

    const id = await store.commit("c1", "app:2", { message: "changes" });
    const image = await store.image("app:2");
    assert.equal(image.id, id);
    assert.equal(image.parent, a.id);
    assert.equal(image.config.rootfs.diff_ids.length, 2);
    assert.deepEqual(image.config.history?.at(-1), {
      created: image.config.created,
      created_by: "unionfs-ts commit c1",
      comment: "changes",
    });
    const out = path.join(tmp, "committed.tar");
    assert.equal(await store.save("app:2", { file: out }), id);
    const entries = await lastLayer(out, tmp);
    assert.deepEqual(entries, ["added", "d/", "d/.wh..wh..opq", "d/f", "etc/", "etc/.wh.doomed"]);

    // The image is in use: rmi refuses; rm, then rmi removes only what nothing else uses.
    await assert.rejects(store.removeImage("app"), usage(/used by container 'c1'/));
    await store.removeContainer("c1");
    assert.deepEqual(await store.containers(), []);
    assert.equal(layerDirs().length, 2, "the container's init and rw layers are gone");
    const r = await store.removeImage("app:latest");
    assert.deepEqual([r.deleted, r.layers], [a.id, 0], "its only layer is app:2's base");
    const r2 = await store.removeImage(id);
    assert.deepEqual([r2.untagged, r2.layers], [["app:2"], 2]);
    assert.equal(chains().length, 0);
    assert.deepEqual(layerDirs(), []);
    assert.deepEqual(fs.readdirSync(path.join(store.dir, "overlay2", "l")), []);
  });

  it("removes a name only while the image has others", async () => {
    const a = layout({ format: "docker-archive", layers: [BASE], name: "one" });
    await store.load({ dir: a.dir });
    const b = layout({ format: "docker-archive", layers: [BASE], name: "two" });
    await store.load({ dir: b.dir });
    const r = await store.removeImage("one");
    assert.deepEqual(r, { untagged: ["one:latest"], deleted: undefined, layers: 0 });
    const r2 = await store.removeImage("two");
    assert.deepEqual(r2, { untagged: ["two:latest"], deleted: a.id, layers: 1 });
  });

  it("refuses a container name twice, and names that are not names", async () => {
    const a = layout({ format: "docker-archive", layers: [BASE], name: "app" });
    await store.load({ dir: a.dir });
    const c = await store.createContainer("app", { name: "c1", command: ["sh"], keep: false });
    await assert.rejects(
      store.createContainer("app", { name: "c1", command: ["sh"], keep: false }),
      usage(/exists already/),
    );
    await assert.rejects(
      store.createContainer("app", { name: "../x", command: ["sh"], keep: false }),
      usage(/not a valid container name/),
    );
    await store.containerEnded(c);
    assert.deepEqual(await store.containers(), [], "a container that was not kept is removed when it ends");
  });
});

/** Entry names of the last layer of an oci-archive, sorted. */
async function lastLayer(archive: string, tmp: string): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(tmp, "saved-"));
  await extract({ file: archive, cwd: dir });
  const blob = (d: string): string => path.join(dir, "blobs", "sha256", d.slice(7));
  const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));
  const manifest = JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), "utf8"));
  const names: string[] = [];
  await list({ file: blob(manifest.layers.at(-1).digest), onReadEntry: (e) => names.push(e.path) });
  return names.sort();
}
