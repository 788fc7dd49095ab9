/**
 * Origins: the inode number an object reported before the union copied it up or materialized it,
 * recorded on the copy as a private xattr (8 bytes, little-endian) so the union keeps reporting it,
 * across renames and remounts.
 *
 * Invariants:
 * - The xattr is `trusted.unionfs.origin` when the mount's private xattrs are `trusted.*`, else
 *   `user.unionfs.origin` (a daemon in a user namespace, as under rootless podman: sys/xattrns.ts).
 * - Writing is best effort: where the xattr cannot be set (trusted.* without CAP_SYS_ADMIN, user.* on a
 *   symlink or device node, a filesystem without that namespace) the copy is still made and shows its
 *   own inode number.
 * - Reading looks at the mount's own name first; a `trusted` mount then also reads `user.unionfs.origin`
 *   (an upper branch written by an unprivileged mount). An unprivileged reader cannot see trusted.* at all.
 */
import { codeOf } from "../errors";
import type { Layer, WritableLayer } from "../layer";
import type { XattrNamespace } from "../sys/xattrns";

/** The origin xattr's name in namespace `ns`. */
export function originXattr(ns: XattrNamespace): string {
  return `${ns}.unionfs.origin`;
}

/** Errors meaning "this object cannot carry that xattr here". */
const CANNOT = new Set(["EPERM", "EACCES", "EOPNOTSUPP", "ENOTSUP"]);

export class Origins {
  /** The name written. */
  readonly name: string;
  private readonly names: readonly string[];

  constructor(ns: XattrNamespace) {
    this.name = originXattr(ns);
    this.names = ns === "trusted" ? [this.name, originXattr("user")] : [this.name];
  }

  /** Records `ino` as the origin of `rel` of `layer`, if the xattr can be set there. */
  write(layer: WritableLayer, rel: string, ino: bigint): void {
    const v = Buffer.alloc(8);
    v.writeBigUInt64LE(ino);
    try {
      layer.setxattr(rel, this.name, v, 0);
    } catch (err) {
      if (!CANNOT.has(codeOf(err) ?? "")) throw err;
    }
  }

  /** The origin inode number recorded on `rel` of `layer`, if any. */
  read(layer: Layer, rel: string): bigint | undefined {
    for (const name of this.names) {
      const v = layer.tryGetxattr(rel, name);
      if (v !== undefined) return v.length === 8 ? v.readBigUInt64LE() : undefined;
    }
    return undefined;
  }
}
