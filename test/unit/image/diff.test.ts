import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { diffLayer, formatChanges, showPath } from "../../../src/image";
import { mknod } from "../../../src/sys/libc";
import { makeTree, removeTree } from "../../helpers/tmp";
import {
  FIXTURE_DIFF_WITH_LOWER,
  FIXTURE_DIFF_WITHOUT_LOWER,
  makeLayerFixture,
  type LayerFixture,
} from "./fixture";

function lines(upper: string, lowers?: string[]): string[] {
  return formatChanges(diffLayer(upper, lowers)).trimEnd().split("\n");
}

function usageError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(
    fn,
    (e: Error) => e.name === "UsageError" && pattern.test(e.message) && !e.message.includes("\n"),
  );
}

describe("image: diff", () => {
  let f: LayerFixture | undefined;
  const extra: string[] = [];
  afterEach(() => {
    if (f) removeTree(f.root);
    f = undefined;
    for (const d of extra.splice(0)) removeTree(d);
  });

  it("classifies every whiteout format as D, lower-present paths as C, what opaque dirs hide as D", () => {
    f = makeLayerFixture();
    assert.deepEqual(lines(f.upper, [f.lower]), FIXTURE_DIFF_WITH_LOWER);
  });

  it("without lowers everything provided is A, whiteouts D", () => {
    f = makeLayerFixture();
    assert.deepEqual(lines(f.upper), FIXTURE_DIFF_WITHOUT_LOWER);
  });

  it("never lists the work dir, the markers themselves or other .wh. names", () => {
    f = makeLayerFixture();
    const out = lines(f.upper, [f.lower]).join("\n");
    assert.ok(!out.includes(".wh."), out);
    assert.ok(!out.includes("junk"), out);
  });

  it("judges C against the merged lower view: whiteouts and opaque dirs in the lowers count", () => {
    const root = makeTree({
      up: { a: "1", b: "1", c: { x: "1" } },
      l1: { ".wh.a": "", c: { ".wh..wh..opq": "", y: "1" } },
      l2: { a: "2", b: "2", c: { x: "2" } },
    });
    extra.push(root);
    const j = (n: string) => path.join(root, n);
    assert.deepEqual(lines(j("up"), [j("l1"), j("l2")]), ["A /a", "C /b", "C /c", "A /c/x"]);
  });

  it("a name both provided and whited out in the layer is reported once, as provided", () => {
    const root = makeTree({ up: { a: "new", ".wh.a": "" }, low: { a: "old" } });
    extra.push(root);
    assert.deepEqual(lines(path.join(root, "up"), [path.join(root, "low")]), ["C /a"]);
  });

  it("an opaque root deletes what the lowers have at the top", () => {
    const root = makeTree({ up: { ".wh..wh..opq": "", n: "1" }, low: { n: "0", x: { y: "" } } });
    extra.push(root);
    assert.deepEqual(lines(path.join(root, "up")), ["A /n"]);
    assert.deepEqual(lines(path.join(root, "up"), [path.join(root, "low")]), ["C /n", "D /x"]);
  });

  it("diff on a podman container's upper dir lists /etc/hosts, /etc/hostname, /etc/mtab, /run/.containerenv", () => {
    // What podman (runc/crun) leaves in a container's rw layer: empty bind-mount targets, the mtab link,
    // mount point directories; and one real change of the program's.
    const root = makeTree({
      up: {
        etc: { hosts: "", hostname: "", "resolv.conf": "nameserver 10.0.0.1\n", motd: "hi\n" },
        run: { ".containerenv": "", secrets: {}, "podman-init": "" },
        dev: {},
        proc: {},
        sys: {},
      },
      low: { etc: { hosts: "127.0.0.1 localhost\n" }, proc: {} },
    });
    extra.push(root);
    const up = path.join(root, "up");
    fs.symlinkSync("/proc/mounts", path.join(up, "etc", "mtab"));
    // resolv.conf holds content (not an empty bind target): a change, listed, as are /etc and /etc/motd.
    assert.deepEqual(lines(up, [path.join(root, "low")]), ["C /etc", "A /etc/motd", "A /etc/resolv.conf"]);
    assert.deepEqual(
      formatChanges(diffLayer(up, [path.join(root, "low")], { all: true }))
        .trimEnd()
        .split("\n"),
      [
        "A /dev",
        "C /etc",
        "A /etc/hostname",
        "C /etc/hosts",
        "A /etc/motd",
        "A /etc/mtab",
        "A /etc/resolv.conf",
        "C /proc",
        "A /run",
        "A /run/.containerenv",
        "A /run/podman-init",
        "A /run/secrets",
        "A /sys",
      ],
    );
    // The same names holding something the program wrote are changes.
    fs.writeFileSync(path.join(up, "etc", "hosts"), "10.1.1.1 db\n");
    fs.writeFileSync(path.join(up, "run", "app.pid"), "42\n");
    fs.writeFileSync(path.join(up, "dev", "data"), "x");
    assert.deepEqual(lines(up), [
      "A /dev",
      "A /dev/data",
      "A /etc",
      "A /etc/hosts",
      "A /etc/motd",
      "A /etc/resolv.conf",
      "A /run",
      "A /run/app.pid",
    ]);
  });

  it("--exclude leaves out matching paths with all they hold, whiteouts and what opaque dirs hide too", () => {
    f = makeLayerFixture();
    const changes = (exclude: string[]) =>
      formatChanges(diffLayer(f!.upper, [f!.lower], { exclude }))
        .trimEnd()
        .split("\n");
    assert.deepEqual(
      changes(["/d", "opq-*/mine", "**/real"]),
      FIXTURE_DIFF_WITH_LOWER.filter((l) => !/ \/d(\/|$)|opq-.*\/mine|\/real$/.test(l)),
    );
    assert.deepEqual(
      changes(["opq-aufs"]),
      FIXTURE_DIFF_WITH_LOWER.filter((l) => !l.includes("/opq-aufs")),
    );
    usageError(() => diffLayer(f!.upper, [], { exclude: ["/"] }), /--exclude '\/' matches nothing/);
  });

  it("sorts by path bytes and escapes names that are not UTF-8 text", () => {
    const root = makeTree({ up: { "a-b": "", a: { b: "" }, é: "" } });
    extra.push(root);
    const up = path.join(root, "up");
    fs.writeFileSync(Buffer.from(`${up}/bad\xff\nname`, "latin1"), "");
    mknod(path.join(up, "dev"), 0o020000 | 0o600, 0x0103);
    assert.deepEqual(lines(up), ["A /a", "A /a-b", "A /a/b", "A /bad\\xff\\x0aname", "A /dev", "A /é"]);
  });

  it("showPath: UTF-8 kept; invalid bytes, control characters and backslash escaped", () => {
    const b = (s: string) => Buffer.from(s, "utf8").toString("latin1");
    assert.equal(showPath(b("/ünï/ç")), "/ünï/ç");
    assert.equal(showPath("/a\\b"), "/a\\\\b");
    assert.equal(showPath("/\x00\x1f\x7f"), "/\\x00\\x1f\\x7f");
    assert.equal(showPath("/\xc3"), "/\\xc3");
    assert.equal(showPath("/\xe0\x80\x80"), "/\\xe0\\x80\\x80");
    assert.equal(showPath("/\xed\xa0\x80"), "/\\xed\\xa0\\x80");
  });

  it("a missing layer or lower is one clear line", () => {
    usageError(() => diffLayer("/nonexistent/upper"), /^layer '\/nonexistent\/upper' does not exist$/);
    const root = makeTree({ up: {}, file: "x" });
    extra.push(root);
    usageError(() => diffLayer(path.join(root, "file")), /is not a directory/);
    usageError(
      () => diffLayer(path.join(root, "up"), ["/nonexistent/lower"]),
      /lower layer .* does not exist/,
    );
  });
});
