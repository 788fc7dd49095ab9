import { strict as assert } from "node:assert";
import { formatBytes, formatDuration, Progress, type ProgressStream } from "../../../src/image/progress";

function fakeTerminal(isTTY: boolean, columns = 100): ProgressStream & { out: string } {
  const s = { isTTY, columns, out: "", write: (t: string) => ((s.out += t), true) };
  return s;
}

describe("image: progress", () => {
  it("formats bytes and durations", () => {
    assert.equal(formatBytes(512), "512 B");
    assert.equal(formatBytes(1536), "1.5 KiB");
    assert.equal(formatBytes(3 * 1024 ** 3), "3.0 GiB");
    assert.equal(formatDuration(42.4), "42s");
    assert.equal(formatDuration(185), "3m05s");
    assert.equal(formatDuration(7620), "2h07m");
  });

  it("on a terminal: bytes, total, percentage, entries, rate and ETA, redrawn at most every interval", () => {
    const term = fakeTerminal(true);
    let now = 0;
    const p = new Progress("import l.tar", { stream: term, total: 4 * 1024 * 1024, now: () => now });
    now = 1000;
    p.add(1024 * 1024, 3);
    assert.equal(term.out, "\rimport l.tar: 1.0 MiB of 4.0 MiB (25%), 3 entries, 1.0 MiB/s, ETA 3s\x1b[K");
    term.out = "";
    now = 1100;
    p.add(1024 * 1024, 1); // within 200 ms: counted, not drawn
    assert.equal(term.out, "");
    p.log("unionfs-ts: warning: something");
    assert.ok(
      term.out.startsWith("\r\x1b[Kunionfs-ts: warning: something\n\rimport l.tar: 2.0 MiB of 4.0 MiB"),
      term.out,
    );
    term.out = "";
    now = 2000;
    p.done();
    assert.equal(term.out, "\rimport l.tar: 2.0 MiB, 4 entries in 2s, 1.0 MiB/s\x1b[K\n");
    p.add(1, 1);
    p.done();
    assert.equal(term.out, "\rimport l.tar: 2.0 MiB, 4 entries in 2s, 1.0 MiB/s\x1b[K\n");
  });

  it("never wider than the terminal: the label gives way first", () => {
    const term = fakeTerminal(true, 60);
    let now = 0;
    const p = new Progress(`import /a/very/long/path/${"x".repeat(50)}.tar`, {
      stream: term,
      now: () => now,
    });
    now = 1000;
    p.add(10, 1);
    const line = term.out.slice(1, -"\x1b[K".length);
    assert.ok(line.length <= 59, line);
    assert.match(line, /^…x+\.tar: 10 B, 1 entry, 10 B\/s$/);
  });

  it("silent when stderr is not a terminal, or with --quiet", () => {
    for (const [term, quiet] of [
      [fakeTerminal(false), false],
      [fakeTerminal(true), true],
    ] as const) {
      const p = new Progress("export", { stream: term, quiet, now: () => 5000 });
      p.add(100, 1);
      p.done();
      assert.equal(p.enabled, false);
      assert.equal(term.out, "");
    }
  });
});
