/**
 * The work dir: where copy-ups and new directories are built before one rename publishes them, and where
 * removed entries are deleted.
 *
 * Invariants: it is on the same filesystem as the writable layer (checked at mount, so the final rename
 * is atomic); every name handed out is fresh; whatever a crash leaves in it is removed by `prepare` at
 * the next mount, and nothing in it is ever visible through the union. It has no default ACL, so what
 * is built in it gets exactly the mode and ACL it is given (a copy inherits nothing).
 */
import * as fs from "node:fs";
import { codeOf } from "../errors";
import { openWritableDir, type Scratch, type WritableLayer } from "../layer";
import { bytesOf } from "../sys/bytes";

export class WorkDir implements Scratch {
  private counter = 0;

  private constructor(readonly layer: WritableLayer) {}

  /**
   * Creates the work dir at the absolute byte-string path `path` if needed, opens it, and empties it of
   * leftovers from an earlier crash.
   */
  static prepare(path: string): WorkDir {
    fs.mkdirSync(bytesOf(path), { recursive: true, mode: 0o700 });
    const work = new WorkDir(openWritableDir(path));
    try {
      for (const e of work.layer.readdir("")) work.layer.removeTree(`/${e.name}`);
      dropDefaultAcl(work.layer);
    } catch (err) {
      work.close();
      throw err;
    }
    return work;
  }

  /** A fresh path in the work dir. Nothing is created. */
  temp(): string {
    this.counter += 1;
    return `/t${process.pid}.${this.counter}`;
  }

  close(): void {
    this.layer.close();
  }
}

/** Removes the default ACL of the work dir (one inherited from its parent when it was made). */
function dropDefaultAcl(layer: WritableLayer): void {
  try {
    layer.removexattr("", "system.posix_acl_default");
  } catch (err) {
    const code = codeOf(err);
    if (code !== "ENODATA" && code !== "EOPNOTSUPP" && code !== "ENOTSUP") throw err;
  }
}
