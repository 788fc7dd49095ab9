/**
 * The mount table: /proc/self/mountinfo, parsed once, the same way for everyone who asks.
 *
 * Invariants:
 * - Fields are byte strings (one char per byte), never decoded as UTF-8: a mount point whose name is not
 *   UTF-8 compares equal to the same bytes. The octal escapes the kernel writes for space, tab, newline
 *   and backslash (`\040`, `\011`, `\012`, `\134`) are undone in the mount point, root and source.
 * - Rows come in the kernel's order: for one mount point, the bottom mount first, the one on top last.
 * - Reading the table never touches a mounted path (a wedged FUSE daemon cannot hang the caller).
 */
import * as fs from "node:fs";
import { fromText } from "./bytes";

export interface MountRow {
  /** "major:minor" of the mounted filesystem (for FUSE the minor is the connection number). */
  dev: string;
  /** The directory of the filesystem mounted here (a bind mount's subtree), as a byte string. */
  root: string;
  /** Where it is mounted, as a byte string. */
  mountPoint: string;
  fsType: string;
  /** The mount source (device, or what the filesystem was given as its name), as a byte string. */
  source: string;
}

/** Undoes the kernel's octal escapes (`\ooo`) in one field. */
export function unescapeMountField(raw: string): string {
  return raw.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8) & 0xff));
}

/** The rows of a mountinfo file's bytes (lines that do not parse are skipped). */
export function parseMountInfo(raw: Buffer): MountRow[] {
  const rows: MountRow[] = [];
  for (const line of raw.toString("latin1").split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-", 6); // optional fields end at "-"; the first six are fixed
    if (sep < 0) continue;
    rows.push({
      dev: f[2] ?? "",
      root: unescapeMountField(f[3] ?? ""),
      mountPoint: unescapeMountField(f[4] ?? ""),
      fsType: f[sep + 1] ?? "",
      source: unescapeMountField(f[sep + 2] ?? ""),
    });
  }
  return rows;
}

/** This process's mount table. */
export function mountTable(): MountRow[] {
  return parseMountInfo(fs.readFileSync("/proc/self/mountinfo"));
}

/** The mounts at `mountpoint` (UTF-8 text, canonical: absolute, no symlinks), bottom first. */
export function mountsAt(mountpoint: string): MountRow[] {
  const want = fromText(mountpoint);
  return mountTable().filter((m) => m.mountPoint === want);
}
