/**
 * Detaching a kernel-transport mount from the outside, synchronously (the mount table and the fusectl
 * abort it relies on are in ../control.ts, shared with the fuse-native transport).
 *
 * Invariants:
 * - Nothing here touches a path *inside* a mount: a wedged daemon would hang the caller. The mount table
 *   (/proc/self/mountinfo) tells what is mounted; umount runs with -c (no canonicalisation, no stat).
 * - Everything is synchronous so that crash handlers and process 'exit' listeners can call it.
 */
import { isMounted, isTopMount, runSync } from "../control";

/** Lazily detaches the mount `dev` at `mountpoint`, if it is there and on top; returns whether it is gone. */
export function detach(mountpoint: string, dev: string): boolean {
  if (isTopMount(mountpoint, dev)) runSync("umount", ["-c", "-l", mountpoint]);
  return !isMounted(mountpoint, dev);
}
