/**
 * Which extended attributes are layer content, read for `export` and written back by `import`.
 *
 * Invariants:
 * - Layer content: `security.capability` (file capabilities), the POSIX ACLs
 *   (`system.posix_acl_access`, `system.posix_acl_default`), `user.*` and `trusted.*`.
 * - Never layer content: what a union keeps for itself (the core's `isPrivateXattr`: `trusted.overlay.*`,
 *   `user.overlay.*`, `trusted.unionfs.*`, `user.unionfs.*`; and fuse-overlayfs's `user.fuseoverlayfs.*`:
 *   whiteouts, opaque markers, redirects, origins) and the other `security.*` labels (SELinux, SMACK, IMA/EVM), which belong to the host that
 *   wrote them, as Docker and podman leave them out.
 * - A version 3 capability (namespaced: it names the root uid of the user namespace that set it) is
 *   archived as version 2, as Docker does: that uid means nothing where the layer is unpacked.
 * - Only reads (`layerXattrs`); names and values are bytes (byte-string names, Buffer values).
 */
import { isUnsupported } from "../errors";
import type { Layer } from "../layer";
import { isPrivateXattr } from "../unionfs";

/** fuse-overlayfs's markers: this union reads them (whiteout registry) but does not keep them private. */
const FUSE_OVERLAYFS_PREFIX = "user.fuseoverlayfs.";
const KEPT_EXACT = new Set(["security.capability", "system.posix_acl_access", "system.posix_acl_default"]);

/** Whether the extended attribute `name` is layer content (see the module invariants). */
export function isLayerXattr(name: string): boolean {
  if (isPrivateXattr(name) || name.startsWith(FUSE_OVERLAYFS_PREFIX)) return false;
  return KEPT_EXACT.has(name) || name.startsWith("user.") || name.startsWith("trusted.");
}

const VFS_CAP_REVISION_2 = 0x02;
const VFS_CAP_REVISION_3 = 0x03;
/** Size of a version 2 `vfs_cap_data`: magic_etc, then two (permitted, inheritable) pairs. */
const XATTR_CAPS_SZ_2 = 20;

/** A `security.capability` value as archived: version 3 (namespaced) becomes version 2. */
export function portableCapability(value: Buffer): Buffer {
  if (value.length < XATTR_CAPS_SZ_2 || value[3] !== VFS_CAP_REVISION_3) return value;
  const v2 = Buffer.from(value.subarray(0, XATTR_CAPS_SZ_2));
  v2[3] = VFS_CAP_REVISION_2;
  return v2;
}

/** The layer-content extended attributes of `rel` of `layer`, name → value; none on ENOTSUP. */
export function layerXattrs(layer: Layer, rel: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let names: string[];
  try {
    names = layer.listxattr(rel);
  } catch (err) {
    if (isUnsupported(err)) return out;
    throw err;
  }
  for (const name of names.filter(isLayerXattr).sort()) {
    const value = layer.getxattr(rel, name);
    if (value === undefined) continue; // removed since the listing
    out.set(name, name === "security.capability" ? portableCapability(value) : value);
  }
  return out;
}
