/**
 * The work dir: where copy-ups and new directories are built before one rename publishes them.
 *
 * Invariants: it is on the same filesystem as the writable layer (checked at mount, so the final rename
 * is atomic); every name handed out is fresh; whatever a crash leaves in it is removed by `clean()` at
 * the next mount, and nothing in it is ever visible through the union. It has no default ACL, so what
 * is built in it gets exactly the mode and ACL it is given (a copy inherits nothing).
 */
import * as fs from "node:fs";
import { codeOf } from "../errors";
import { bytesOf } from "../sys/bytes";
import * as sys from "../sys/libc";

export class WorkDir {
  private counter = 0;

  /** `path` is an absolute byte string. */
  constructor(readonly path: string) {}

  /** Creates the work dir if needed and empties it of leftovers from an earlier crash. */
  prepare(): void {
    fs.mkdirSync(bytesOf(this.path), { recursive: true, mode: 0o700 });
    for (const name of fs.readdirSync(bytesOf(this.path), { encoding: "buffer" })) {
      fs.rmSync(Buffer.concat([bytesOf(this.path + "/"), name]), { recursive: true, force: true });
    }
    dropDefaultAcl(this.path);
  }

  /** A fresh absolute byte-string path inside the work dir. Nothing is created. */
  tempPath(): string {
    this.counter += 1;
    return `${this.path}/t${process.pid}.${this.counter}`;
  }
}

/** Removes the default ACL of directory `path` (one inherited from its parent when it was made). */
function dropDefaultAcl(path: string): void {
  try {
    sys.lremovexattr(path, "system.posix_acl_default");
  } catch (err) {
    const code = codeOf(err);
    if (code !== "ENODATA" && code !== "EOPNOTSUPP" && code !== "ENOTSUP") throw err;
  }
}
