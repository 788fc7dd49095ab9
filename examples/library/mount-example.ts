/**
 * Using unionfs-ts from a Node program (in your project: `import { mount } from "unionfs-ts"`).
 *
 * Run: node dist/examples/library/mount-example.js — builds two layers in a temp dir, mounts them,
 * writes through the mount with async fs calls, unmounts, and prints where the write landed.
 */
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { mount } from "../../src";

async function main(): Promise<void> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "unionfs-lib-"));
  const [lower, upper, mnt] = ["lower", "upper", "mnt"].map((d) => path.join(root, d)) as [
    string,
    string,
    string,
  ];
  await Promise.all([lower, upper, mnt].map((d) => fs.mkdir(d)));
  await fs.writeFile(path.join(lower, "hello.txt"), "hello from the image\n");

  const m = await mount({ layers: [lower], upper, mountpoint: mnt });
  m.on("error", (err) => console.error("union failed:", err));
  try {
    console.log("merged view:", (await fs.readdir(mnt)).join(" "));
    await fs.appendFile(path.join(mnt, "hello.txt"), "and from the container\n");
    console.log("through the mount:", JSON.stringify(await fs.readFile(path.join(mnt, "hello.txt"), "utf8")));
  } finally {
    await m.unmount();
  }
  console.log("lower layer:", JSON.stringify(await fs.readFile(path.join(lower, "hello.txt"), "utf8")));
  console.log("upper layer:", JSON.stringify(await fs.readFile(path.join(upper, "hello.txt"), "utf8")));
  await fs.rm(root, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
