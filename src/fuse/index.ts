/**
 * The FUSE transports. `kernelTransport` speaks the kernel protocol over /dev/fuse directly.
 *
 * Invariants: see transport.ts. `abortMount(mountpoint)` and `abortAllMounts()` (lifecycle.ts, for the
 * mounts of both transports) are synchronous and safe to call from crash and signal handlers: they abort
 * the FUSE connection(s) this process serves (pending requests fail, the serving thread stops) and
 * detach the mount(s).
 */
import type { MountRequest, Transport } from "./transport";
import { KernelMount, mountKernel } from "./kernel/mount";
import { abortAllMounts, abortMount } from "./lifecycle";

export { canonicalMountpoint } from "./lifecycle";
import { nativeTransport } from "./native";
import { chooseTransportName, type TransportName } from "./native/select";

export type { MountRequest, MountedFs, Transport } from "./transport";
export { FS_TYPE } from "./transport";
export { KernelMount, abortAllMounts, abortMount };

/** The kernel transport; its mounts are KernelMounts (with `error`, `dev` and a synchronous `abort()`). */
export interface KernelTransport extends Transport {
  mount(req: MountRequest): Promise<KernelMount>;
}

export const kernelTransport: KernelTransport = {
  name: "kernel",
  mount: mountKernel,
};

// ---- the fuse-native transport and the choice between the two ------------------------------------

export { nativeTransport, type NativeMount, cleanDeadMount } from "./native";
export { TRANSPORT_NAMES, type TransportName } from "./native/select";

/** Every transport by name. */
export const transports: Readonly<Record<"kernel" | "fuse-native", Transport>> = {
  kernel: kernelTransport,
  "fuse-native": nativeTransport,
};

/** The transport for `name` ("auto" | "kernel" | "fuse-native") and why it was picked; throws one line. */
export function chooseTransport(name: string): { transport: Transport; reason: string } {
  const c = chooseTransportName(name);
  return { transport: transports[c.name], reason: c.reason };
}

/** The transport for `name` ("auto" | "kernel" | "fuse-native"); throws one line when it cannot serve. */
export function selectTransport(name: TransportName | string): Transport {
  return chooseTransport(name).transport;
}
