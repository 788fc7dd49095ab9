/**
 * Which transport serves a mount: `kernel`, `fuse-native`, or `auto` (kernel when this process is root
 * and can open /dev/fuse, fuse-native otherwise).
 *
 * Invariants: choosing never mounts anything; a choice that cannot work throws one line (a UsageError for
 * an unknown name, the binding's ENOPKG error when fuse-native is needed but cannot load).
 */
import * as fs from "node:fs";
import { UsageError } from "../../errors";
import { loadFuseNative } from "./binding";

export const TRANSPORT_NAMES = ["auto", "kernel", "fuse-native"] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

export interface Probe {
  isRoot(): boolean;
  /** undefined when /dev/fuse opens read-write, else why not. */
  devFuseError(): string | undefined;
  /** Throws the one-line error when the binding cannot load. */
  loadNative(): void;
}

export const systemProbe: Probe = {
  isRoot: () => (process.geteuid?.() ?? 0) === 0,
  devFuseError: () => {
    try {
      fs.closeSync(fs.openSync("/dev/fuse", "r+"));
      return undefined;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? String(err);
    }
  },
  loadNative: () => void loadFuseNative(),
};

export function isTransportName(name: string): name is TransportName {
  return (TRANSPORT_NAMES as readonly string[]).includes(name);
}

/** The concrete transport for `name`, and (for auto) why it was picked. */
export function chooseTransportName(
  name: string,
  probe: Probe = systemProbe,
): { name: "kernel" | "fuse-native"; reason: string } {
  if (!isTransportName(name)) {
    throw new UsageError(`unknown transport '${name}' (expected ${TRANSPORT_NAMES.join(", ")})`);
  }
  if (name === "kernel") return { name, reason: "asked for" };
  if (name === "fuse-native") {
    probe.loadNative();
    return { name, reason: "asked for" };
  }
  const why = !probe.isRoot() ? "not root" : probe.devFuseError();
  if (why === undefined) return { name: "kernel", reason: "auto: root and /dev/fuse opens" };
  const reason = why === "not root" ? "auto: not root" : `auto: /dev/fuse does not open (${why})`;
  try {
    probe.loadNative();
  } catch (err) {
    const e = err as Error;
    e.message = `no transport can serve: the kernel one needs root and /dev/fuse (${why}); ${e.message}`;
    throw e;
  }
  return { name: "fuse-native", reason };
}
