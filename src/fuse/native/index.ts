/**
 * The fuse-native transport: the union core served through the `fuse-native` binding (libfuse 2,
 * high-level path-based API), for machines where the kernel transport cannot run (not root, no usable
 * /dev/fuse). See README "Transports" for what it cannot do.
 *
 * Invariants: see transport.ts and mount.ts. Importing this module does not load the binding.
 */
import type { MountRequest, Transport } from "../transport";
import { NativeMount, abortAllNativeMounts, abortNativeMount, mountNative } from "./mount";

export { NativeMount, abortAllNativeMounts, abortNativeMount };
export { fuseNativeAvailable, loadFuseNative, INSTALL_HINT } from "./binding";
export { cleanDeadMount } from "./control";

export interface NativeTransport extends Transport {
  mount(req: MountRequest): Promise<NativeMount>;
}

export const nativeTransport: NativeTransport = {
  name: "fuse-native",
  mount: mountNative,
};
