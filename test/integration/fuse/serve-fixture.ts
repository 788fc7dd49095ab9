/**
 * Serves the passthrough test double over the kernel transport, in its own process:
 *
 *   node dist/test/integration/fuse/serve-fixture.js SRC MNT
 *
 * Prints "ready" on stdout once the mount answers, then waits until it is unmounted and exits 0
 * (1 if serving stopped on an error). SIGTERM/SIGINT unmount; SIGUSR2 throws an uncaught exception (crash
 * injection). FUSE_DEBUG=1 logs every request; FIXTURE_FACTORY names another export of passthrough-fs.
 * A process that serves FUSE must never be the one using the mount: tests spawn this.
 */
import { kernelTransport } from "../../../src/fuse";

async function main(): Promise<number> {
  const [src, mnt] = process.argv.slice(2);
  if (src === undefined || mnt === undefined) {
    process.stderr.write("usage: serve-fixture SRC MNT\n");
    return 2;
  }
  const m = await kernelTransport.mount({
    mountpoint: mnt,
    config: {
      branches: [{ path: src, mode: "rw" }],
      whiteout: "aufs",
      ...(process.env.FIXTURE_IO_URING === "1" ? { ioUring: true } : {}),
    },
    fsname: `passthrough:${src}`,
    debug: process.env.FUSE_DEBUG === "1",
    factory: {
      module: require.resolve("./passthrough-fs"),
      name: process.env.FIXTURE_FACTORY ?? "createPassthrough",
    },
  });
  const stop = (): void =>
    void m.unmount().catch((err: unknown) => process.stderr.write(`unmount: ${String(err)}\n`));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // Crash injection for the tests: an uncaught exception in the serving process's main thread.
  process.on("SIGUSR2", () => {
    throw new Error("injected crash");
  });
  process.stdout.write("ready\n");
  await m.done;
  return m.error === undefined ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`serve-fixture: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
