/**
 * Finding the fsops helper: bench/fsops.c compiled with `cc -O2` into /tmp/unionfs-ts-bench-bin (named by
 * a hash of the source, so an edited source is recompiled and concurrent benches never write the same
 * file), or else the compiled Node stand-in dist/bench/fsops.js.
 *
 * Invariant: the binary appears under its final name only complete (compiled to a temp name, renamed).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

/** The repository root: this file runs from dist/bench/. */
export const REPO = path.resolve(__dirname, "..", "..");

export interface FsOps {
  kind: "c" | "node";
  cmd: string;
  /** Arguments that come before the fsops operation (the script, for node). */
  pre: string[];
}

export function findFsOps(binDir = "/tmp/unionfs-ts-bench-bin"): FsOps {
  const nodeOps: FsOps = { kind: "node", cmd: process.execPath, pre: [path.join(__dirname, "fsops.js")] };
  const src = path.join(REPO, "bench", "fsops.c");
  let code: Buffer;
  try {
    code = fs.readFileSync(src);
  } catch {
    return nodeOps;
  }
  const bin = path.join(binDir, `fsops-${createHash("sha256").update(code).digest("hex").slice(0, 12)}`);
  if (fs.existsSync(bin)) return { kind: "c", cmd: bin, pre: [] };
  fs.mkdirSync(binDir, { recursive: true });
  const tmp = `${bin}.tmp-${process.pid}`;
  const r = spawnSync("cc", ["-O2", "-o", tmp, src], { encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    return nodeOps;
  }
  fs.renameSync(tmp, bin);
  return { kind: "c", cmd: bin, pre: [] };
}
