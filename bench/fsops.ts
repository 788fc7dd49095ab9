/**
 * Node stand-in for bench/fsops.c, used when no C compiler is found: same arguments, same one-line JSON
 * output (see fsops.c). Synchronous calls only, so each operation costs one syscall plus a few µs of
 * Node; the C helper is preferred because it costs less per operation. Runs as its own process, so a hung
 * filesystem hangs this process and not the bench.
 */
import * as fs from "node:fs";

interface Tally {
  ok: number;
  fail: number;
  errno: number;
}

function failed(t: Tally, err: unknown): void {
  if (t.fail++ === 0) t.errno = -((err as NodeJS.ErrnoException).errno ?? 0);
}

function report(op: string, n: number, t: Tally, t0: bigint, stopped = false): void {
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const out = { op, n, ok: t.ok, fail: t.fail, errno: t.errno, seconds, stopped: stopped ? 1 : 0 };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** A check "has MAXS (0 = never) passed since now?". */
function deadline(maxs: string | undefined): () => boolean {
  const s = Number(maxs ?? 0);
  if (!(s > 0)) return () => false;
  const end = process.hrtime.bigint() + BigInt(Math.round(s * 1e9));
  return () => process.hrtime.bigint() >= end;
}

function main(argv: string[]): number {
  const [op = "", ...a] = argv;
  const t: Tally = { ok: 0, fail: 0, errno: 0 };
  const arg = (i: number): string => a[i] ?? "";
  if (op === "stat" && (a.length === 2 || a.length === 3)) {
    const paths = fs
      .readFileSync(arg(1), "utf8")
      .split("\n")
      .filter((l) => l !== "");
    process.chdir(arg(0));
    const t0 = process.hrtime.bigint();
    const late = deadline(a[2]);
    let i = 0;
    for (; i < paths.length && !late(); i++) {
      try {
        fs.statSync(paths[i] as string);
        t.ok++;
      } catch (err) {
        failed(t, err);
      }
    }
    report("stat", i, t, t0, i < paths.length);
    return 0;
  }
  if (op === "create" && (a.length === 5 || a.length === 6)) {
    const n = Number(arg(2));
    const buf = Buffer.alloc(Number(arg(3)), "u");
    process.chdir(arg(0));
    const t0 = process.hrtime.bigint();
    fs.mkdirSync(arg(1), { recursive: true });
    const late = deadline(a[5]);
    let i = 0;
    for (; i < n && !late(); i++) {
      try {
        const fd = fs.openSync(`${arg(1)}/${arg(4)}-${String(i).padStart(7, "0")}`, "w", 0o644);
        try {
          fs.writeSync(fd, buf);
        } finally {
          fs.closeSync(fd);
        }
        t.ok++;
      } catch (err) {
        failed(t, err);
      }
    }
    report("create", i, t, t0, i < n);
    return 0;
  }
  if (op === "delete" && (a.length === 5 || a.length === 6)) {
    const n = Number(arg(2));
    process.chdir(arg(0));
    const t0 = process.hrtime.bigint();
    const late = deadline(a[5]);
    let i = 0;
    for (; i < n && !late(); i++) {
      try {
        fs.unlinkSync(`${arg(1)}/${arg(3)}-${String(i).padStart(7, "0")}`);
        t.ok++;
      } catch (err) {
        failed(t, err);
      }
    }
    if (arg(4) === "1" && i === n) {
      try {
        fs.rmdirSync(arg(1));
      } catch (err) {
        failed(t, err);
      }
    }
    report("delete", i, t, t0, i < n);
    return 0;
  }
  if (op === "append" && a.length === 2) {
    const buf = Buffer.alloc(Number(arg(1)), "a");
    const t0 = process.hrtime.bigint();
    try {
      const fd = fs.openSync(arg(0), fs.constants.O_WRONLY | fs.constants.O_APPEND);
      try {
        fs.writeSync(fd, buf);
      } finally {
        fs.closeSync(fd);
      }
      t.ok++;
    } catch (err) {
      failed(t, err);
    }
    report("append", 1, t, t0);
    return 0;
  }
  if (op === "randread" && a.length === 3) {
    const seconds = Number(arg(1));
    const bs = Number(arg(2));
    const fd = fs.openSync(arg(0), "r");
    const blocks = Math.floor(fs.fstatSync(fd).size / bs);
    const buf = Buffer.alloc(bs);
    const t0 = process.hrtime.bigint();
    const end = t0 + BigInt(Math.round(seconds * 1e9));
    let n = 0;
    while (process.hrtime.bigint() < end) {
      for (let k = 0; k < 64; k++, n++) {
        try {
          fs.readSync(fd, buf, 0, bs, Math.floor(Math.random() * blocks) * bs);
          t.ok++;
        } catch (err) {
          failed(t, err);
        }
      }
    }
    fs.closeSync(fd);
    report("randread", n, t, t0);
    return 0;
  }
  process.stderr.write("usage: fsops stat|create|delete|append|randread ARGS (see bench/fsops.c)\n");
  return 2;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
