/**
 * Which xattr namespace a union's private markers go in: `trusted.` (overlay's `trusted.overlay.*`, the
 * union's `trusted.unionfs.*`), which only CAP_SYS_ADMIN in the initial user namespace may set, or
 * `user.` (`user.overlay.*`, `user.unionfs.*`), as kernel overlayfs uses with `userxattr` in a user
 * namespace (rootless podman runs its mount program there).
 *
 * Invariants: the choice is made from the process's own credentials (/proc/self), once per mount, and
 * never by trying a write; readers accept both namespaces whatever was chosen.
 */
import * as fs from "node:fs";

export type XattrNamespace = "trusted" | "user";

const CAP_SYS_ADMIN = 21n;
/** /proc/self/uid_map of a process in the initial user namespace. */
const INITIAL_UID_MAP = /^\s*0\s+0\s+4294967295\s*$/;

/** Whether the effective capabilities of `status` (/proc/PID/status text) include CAP_SYS_ADMIN. */
export function hasSysAdmin(status: string): boolean {
  const hex = /^CapEff:\s*([0-9a-f]+)$/im.exec(status)?.[1];
  return hex !== undefined && ((BigInt(`0x${hex}`) >> CAP_SYS_ADMIN) & 1n) === 1n;
}

/** Whether `uidMap` (/proc/PID/uid_map text) is the initial user namespace's. */
export function isInitialUserNs(uidMap: string): boolean {
  return INITIAL_UID_MAP.test(uidMap);
}

/** `trusted` when this process may set trusted.* xattrs, else `user`. */
export function privateXattrNamespace(): XattrNamespace {
  const status = fs.readFileSync("/proc/self/status", "latin1");
  const uidMap = fs.readFileSync("/proc/self/uid_map", "latin1");
  return hasSysAdmin(status) && isInitialUserNs(uidMap) ? "trusted" : "user";
}
