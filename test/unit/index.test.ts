/** The library's MountParams as the union's config. */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { configOf, mount, UsageError, type TransportName } from "../../src";

describe("library: configOf", () => {
  it("regression: readOnly, passthrough and timeout reach the config (MountParams lacked them)", () => {
    const c = configOf({
      layers: ["/l1", "/l2"],
      upper: "/u",
      mountpoint: "/m",
      options: { readOnly: true, passthrough: "off", timeout: 0 },
    });
    assert.deepEqual(
      c.branches.map((b) => [b.path, b.mode]),
      [
        ["/u", "ro"],
        ["/l1", "ro"],
        ["/l2", "ro"],
      ],
    );
    assert.equal(c.passthrough, "off");
    assert.equal(c.cacheTimeout, 0);
    assert.equal(configOf({ layers: ["/l"], upper: "/u", mountpoint: "/m" }).branches[0]?.mode, "rw");
  });
});

describe("library: mount", () => {
  it("regression: MountParams lacked the transport: an unknown one is one line and nothing is mounted", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-ts-lib-"));
    try {
      for (const d of ["lower", "mp"]) fs.mkdirSync(path.join(dir, d));
      const params = { layers: [path.join(dir, "lower")], mountpoint: path.join(dir, "mp") };
      const transport = "bogus" as TransportName;
      await assert.rejects(
        mount({ ...params, options: { transport } }),
        (e: unknown) => e instanceof UsageError && /^unknown transport 'bogus'/.test(e.message),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("library: image exports", () => {
  it("exports the layer tools and the image store from the package entry (no deep imports)", async () => {
    const lib = await import("../../src");
    for (const f of [
      lib.diffLayer,
      lib.exportLayer,
      lib.importLayer,
      lib.importLayerStream,
      lib.resolveOverlay2,
      lib.chainIds,
    ]) {
      assert.equal(typeof f, "function");
    }
    const store = new lib.ImageStore({ dir: "/nonexistent/unionfs-ts-store" });
    assert.equal(store.dir, "/nonexistent/unionfs-ts-store");
    assert.deepEqual(await store.images(), [], "a store that does not exist yet is empty");
    assert.equal(lib.DEFAULT_STORE, "/var/lib/unionfs-ts");
  });
});

describe("the package", function () {
  this.timeout(30_000); // npm and node start as child processes
  const root = path.resolve(__dirname, "..", "..", "..");
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  const node = (args: string[]): string =>
    execFileSync(process.execPath, args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

  it("regression: npm pack shipped scripts, tests and source maps: only dist/src JavaScript, types, README", () => {
    const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    const files = (JSON.parse(out) as [{ files: { path: string }[] }])[0].files.map((f) => f.path);
    const stray = files.filter(
      (f) => !/^dist\/src\/.+\.(js|d\.ts)$/.test(f) && f !== "README.md" && f !== "package.json",
    );
    assert.deepEqual(stray, []);
    assert.ok(files.includes("dist/src/index.js") && files.includes("dist/src/index.d.ts"));
    assert.ok(files.includes("dist/src/cli/mount-helper.js"));
  });

  it("regression: no exports, no os: importable by name from ESM and CommonJS, with types; Linux only", () => {
    assert.deepEqual(pkg.os, ["linux"]);
    assert.equal(pkg.exports["."].types, "./dist/src/index.d.ts");
    assert.ok(fs.existsSync(path.join(root, pkg.exports["."].types)));
    // A package may import itself by name through its exports (self-reference), as a user would.
    const esm = `import { mount, ImageStore } from "unionfs-ts"; console.log(typeof mount, typeof ImageStore)`;
    assert.equal(node(["--input-type=module", "-e", esm]), "function function\n");
    const cjs = `const { mount, importLayer } = require("unionfs-ts"); console.log(typeof mount, typeof importLayer)`;
    assert.equal(node(["-e", cjs]), "function function\n");
  });

  it("regression: the optional fuse-native pulled prebuilt packages into every install: an optional peer", () => {
    assert.equal(pkg.dependencies?.["fuse-native"], undefined);
    assert.equal(pkg.optionalDependencies?.["fuse-native"], undefined);
    assert.equal(pkg.peerDependenciesMeta?.["fuse-native"]?.optional, true);
  });

  it("regression: help showed '(default: [])'; mount's names log=, pidfile= and the generic flags", () => {
    const cli = path.join(root, "dist", "src", "cli", "main.js");
    for (const command of ["mount", "run", "diff", "export", "commit", "mount-overlay2"]) {
      assert.doesNotMatch(node([cli, command, "--help"]), /default: \[\]/, command);
    }
    const help = node([cli, "mount", "--help"]);
    for (const word of ["log=FILE", "pidfile=FILE", "nosuid", "noexec", "in the foreground"]) {
      assert.ok(help.includes(word), `mount --help lacks ${word}`);
    }
  });
});
