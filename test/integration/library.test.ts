import { strict as assert } from "node:assert";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { isMounted, waitFor } from "../helpers/mounts";
import { useCleanup } from "../helpers/unionfs";
import { requireNative } from "./native/native";

describe("library API (examples/library, run as a child process)", () => {
  it("mounts, writes through the mount, unmounts; the write lands in the upper layer only", function () {
    this.timeout(30000);
    const script = path.join(__dirname, "../../examples/library/mount-example.js");
    const r = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 25000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /merged view: hello\.txt/);
    assert.match(r.stdout, /lower layer: "hello from the image\\n"/);
    assert.match(r.stdout, /upper layer: "hello from the image\\nand from the container\\n"/);
  });
});

describe("library lifecycle: signals, AbortSignal, dead mounts", function () {
  this.timeout(60_000);
  const t = useCleanup();
  const lib = path.resolve(__dirname, "..", "..", "src", "index.js");

  /**
   * A child that mounts `tree` through the library, prints "mounted", then waits for its stdin to end;
   * `pending` runs right after mount() is called, before it resolves; `options` go into its options.
   */
  function child(tree: string, pending = "", options = ""): ChildProcess {
    const script = `
      const { mount } = require(${JSON.stringify(lib)});
      const ac = new AbortController();
      process.stdin.on("data", (d) => { if (String(d).includes("abort")) ac.abort(); });
      const mounting = mount({ layers: [${JSON.stringify(`${tree}/lower`)}],
              upper: ${JSON.stringify(`${tree}/upper`)}, mountpoint: ${JSON.stringify(`${tree}/mp`)}, signal: ac.signal, options: { ${options} } });
      ${pending}
      mounting
        .then((m) => { console.log("mounted by " + m.transport); return m.done; })
        .then(() => console.log("done"))
        .catch((e) => { console.error(e.message); process.exit(2); });`;
    const c = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "pipe"] });
    t.defer("kill the library child", () => {
      if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    });
    return c;
  }

  function waitForLine(c: ChildProcess, line: string): Promise<void> {
    return new Promise((resolve, reject) => {
      let out = "";
      let err = "";
      c.stdout?.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes(line)) resolve();
      });
      c.stderr?.on("data", (b: Buffer) => (err += b.toString()));
      c.once("exit", () => reject(new Error(`child exited before "${line}": ${err}`)));
    });
  }

  function exited(c: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (c.exitCode !== null || c.signalCode !== null)
      return Promise.resolve({ code: c.exitCode, signal: c.signalCode });
    return new Promise((resolve) => c.once("exit", (code, signal) => resolve({ code, signal })));
  }

  function tree(): string {
    const root = t.tree({ lower: { f: "from lower\n" }, upper: {}, mp: {} }, "lib");
    t.guardMountpoint(path.join(root, "mp"));
    return root;
  }

  it("regression: SIGINT (Ctrl-C) to a program that mounted unmounts, and the next mount() there works", async function () {
    const root = tree();
    const first = child(root);
    await waitForLine(first, "mounted");
    assert.equal(isMounted(path.join(root, "mp")), true);
    first.kill("SIGINT");
    const end = await exited(first);
    assert.equal(end.signal, "SIGINT", "the program still dies of SIGINT");
    await waitFor(() => !isMounted(path.join(root, "mp")), 10_000, "the mount to go");
    const second = child(root);
    await waitForLine(second, "mounted");
    assert.equal(fs.readFileSync(path.join(root, "mp", "f"), "utf8"), "from lower\n");
    second.kill("SIGTERM");
    await exited(second);
  });

  it("regression: SIGINT while mount() is pending (in the mount table, not yet answering) unmounts too", async function () {
    const root = tree();
    const mp = path.join(root, "mp");
    // As soon as the mount shows in the child's mount table, before mount() resolves (INIT is answered
    // on the serving thread and reaches the main thread later), the child sends itself SIGINT.
    const interrupt = `
      const seen = () => require("node:fs").readFileSync("/proc/self/mountinfo", "utf8").includes(${JSON.stringify(` ${mp} `)});
      const poll = () => { if (!seen()) return setImmediate(poll); console.log("interrupting"); process.kill(process.pid, "SIGINT"); };
      poll();`;
    const c = child(root, interrupt);
    const out: string[] = [];
    c.stdout?.on("data", (b: Buffer) => out.push(b.toString()));
    const end = await exited(c);
    assert.match(out.join(""), /^interrupting\n/, "SIGINT came before mount() resolved");
    assert.equal(end.signal, "SIGINT", "the program still dies of SIGINT");
    assert.equal(isMounted(mp), false, "no dead mount is left");
  });

  it("regression: MountParams lacked the transport: options.transport picks fuse-native, and SIGINT unmounts it", async function () {
    requireNative(this);
    const root = tree();
    const c = child(root, "", `transport: "fuse-native"`);
    await waitForLine(c, "mounted by fuse-native");
    assert.equal(await fs.promises.readFile(path.join(root, "mp", "f"), "utf8"), "from lower\n");
    c.kill("SIGINT");
    assert.equal((await exited(c)).signal, "SIGINT");
    assert.equal(isMounted(path.join(root, "mp")), false);
  });

  it("clears a dead mount left by a program that was SIGKILLed", async function () {
    const root = tree();
    const first = child(root);
    await waitForLine(first, "mounted");
    first.kill("SIGKILL");
    await exited(first);
    const second = child(root);
    await waitForLine(second, "mounted");
    assert.equal(fs.readFileSync(path.join(root, "mp", "f"), "utf8"), "from lower\n");
    second.stdin?.write("abort\n");
    await waitForLine(second, "done");
    assert.equal(isMounted(path.join(root, "mp")), false, "aborting the signal unmounted");
  });
});
