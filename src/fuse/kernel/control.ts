/**
 * Taking a FUSE mount down from the outside, synchronously: the mount table, connection abort, detach.
 *
 * Invariants:
 * - Nothing here touches a path *inside* a mount: a wedged daemon would hang the caller. The mount table
 *   (/proc/self/mountinfo) tells what is mounted; umount runs with -c (no canonicalisation, no stat).
 * - Everything is synchronous so that crash handlers and process 'exit' listeners can call it.
 * - The mount table and the fusectl abort are shared with the fuse-native transport (../control.ts).
 */
import { isMounted, isTopMount, runSync } from "../control";

export {
  FUSECTL_DIR,
  abortConnection,
  connectionId,
  isMounted,
  isTopMount,
  mountsAt,
  parseMountInfo,
  type MountRow,
} from "../control";

/** Lazily detaches the mount `dev` at `mountpoint`, if it is there and on top; returns whether it is gone. */
export function detach(mountpoint: string, dev: string): boolean {
  if (isTopMount(mountpoint, dev)) runSync("umount", ["-c", "-l", mountpoint]);
  return !isMounted(mountpoint, dev);
}
