/**
 * The fuse-native transport: the union core served through the `fuse-native` binding (libfuse 2,
 * high-level path-based API), for machines where the kernel transport cannot run (not root, no usable
 * /dev/fuse). See README "Transports" for what it cannot do.
 *
 * Invariants: see transport.ts and mount.ts. Importing this module loads neither the binding nor the
 * serving code (mount.ts and its bridge): a kernel-transport mount starts without them.
 */
import type { MountRequest, Transport } from "../transport";
import type { NativeMount } from "./mount";

export type { NativeMount };

type MountModule = typeof import("./mount");
let loaded: MountModule | undefined;

function impl(): MountModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require("./mount") as MountModule;
  return loaded;
}

export { fuseNativeAvailable, loadFuseNative, INSTALL_HINT } from "./binding";
export { cleanDeadMount } from "./control";

export interface NativeTransport extends Transport {
  mount(req: MountRequest): Promise<NativeMount>;
}

export const nativeTransport: NativeTransport = {
  name: "fuse-native",
  mount: (req) => impl().mountNative(req),
};
