/**
 * Serves a union through the fuse-native transport with one of the cores of fake-cores.ts, in its own
 * process (a process that serves FUSE must never be the one using the mount):
 *
 *   node dist/test/integration/native/serve-native.js FACTORY UPPER LOWER MNT
 *
 * Prints "ready" on stdout once the mount answers, then serves until it is unmounted and exits 0.
 * SIGTERM/SIGINT unmount; SIGUSR2 throws an uncaught exception (crash injection: the process exits, and
 * the transport's exit hook must take the mount down with it).
 */
import { nativeTransport } from "../../../src/fuse";

async function main(): Promise<number> {
  const [factory, upper, lower, mnt] = process.argv.slice(2);
  if (factory === undefined || upper === undefined || lower === undefined || mnt === undefined) {
    process.stderr.write("usage: serve-native FACTORY UPPER LOWER MNT\n");
    return 2;
  }
  const m = await nativeTransport.mount({
    mountpoint: mnt,
    config: {
      branches: [
        { path: upper, mode: "rw" },
        { path: lower, mode: "ro" },
      ],
      whiteout: "aufs",
    },
    fsname: `${factory}:${upper}:${lower}`,
    debug: process.env.FUSE_DEBUG === "1",
    factory: { module: require.resolve("./fake-cores"), name: factory },
  });
  const stop = (): void =>
    void m.unmount().catch((err: unknown) => process.stderr.write(`unmount: ${String(err)}\n`));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("SIGUSR2", () => {
    throw new Error("injected crash");
  });
  process.stdout.write("ready\n");
  await m.done;
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`serve-native: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
