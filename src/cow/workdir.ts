/**
 * The work dir: where copy-ups and new directories are built before one rename publishes them.
 *
 * Invariants: it is on the same filesystem as the writable layer (checked at mount, so the final rename
 * is atomic); every name handed out is fresh; whatever a crash leaves in it is removed by `clean()` at
 * the next mount, and nothing in it is ever visible through the union.
 */
import * as fs from "node:fs";
import { bytesOf } from "../sys/bytes";

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
  }

  /** A fresh absolute byte-string path inside the work dir. Nothing is created. */
  tempPath(): string {
    this.counter += 1;
    return `${this.path}/t${process.pid}.${this.counter}`;
  }
}
