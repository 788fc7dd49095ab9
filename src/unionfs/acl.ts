/**
 * POSIX ACLs of the union: which ACL attributes there are, and the mode a new object is created with.
 *
 * Invariants:
 * - ACLs are stored as the layers' own `system.posix_acl_*` xattrs; the upper filesystem enforces and
 *   inherits them (the union computes no ACL itself).
 * - A new object's mode follows POSIX: when the parent directory has a default ACL, that ACL (applied by
 *   the upper filesystem at creation) replaces the umask; otherwise the caller's umask is applied. The
 *   daemon's own umask is 0, so nothing is masked twice.
 * - "No ACL" is always ENODATA towards the kernel, never EOPNOTSUPP: with FUSE_POSIX_ACL the kernel turns
 *   any other error of an ACL read into a failed permission check.
 */
import type { Layer } from "../layer";

export const ACL_ACCESS = "system.posix_acl_access";
export const ACL_DEFAULT = "system.posix_acl_default";

export function isAclXattr(name: string): boolean {
  return name === ACL_ACCESS || name === ACL_DEFAULT;
}

/** The default ACL (raw xattr value) of directory `rel` in `layer`, or undefined when it has none. */
export function defaultAclOf(layer: Layer, rel: string): Buffer | undefined {
  return layer.tryGetxattr(rel, ACL_DEFAULT);
}

/**
 * The mode to create an object with. `umask` undefined: the transport already applied it. With a default
 * ACL on the parent the mode goes unmasked (the filesystem masks it with the ACL instead).
 */
export function creationMode(mode: number, umask: number | undefined, parentHasDefaultAcl: boolean): number {
  if (umask === undefined || parentHasDefaultAcl) return mode;
  return mode & ~(umask & 0o777);
}
