/**
 * The init layer: the read-only layer `run` puts between the image's layers and the writable layer, as
 * Docker's `<id>-init` layer. It holds what the engine writes for this one container (`/etc/hosts`,
 * `/etc/hostname`, `/etc/resolv.conf`) and the empty directories the container's mounts need (`/proc`,
 * `/dev`, `/sys` when used), so the writable layer receives only what the program writes: `diff`, `export`
 * and a commit of it never show them.
 *
 * Usage (what `run` does; an image store can do the same for its containers):
 *
 *   const spec = hostInitSpec({ hostname: "box", mountpoints: runMountpoints(false), lowers: imageDirs });
 *   buildInitLayer("/some/empty/dir", spec);
 *   const branches = withInitLayer(parseBranches("rw:img2:img1"), "/some/empty/dir");
 *
 * Invariants:
 * - `buildInitLayer` writes only inside the directory it is given (created when missing, refused when
 *   not empty); it holds no whiteouts, no work dir and nothing but the entries `initLayerEntries` lists.
 * - Files are mode 0644, owned by the caller (root, for `run`). A directory it creates takes mode, owner
 *   and times from the first of `lowers` (top first) that has a directory at that path, else 0755: the union shows the image's
 *   own `/etc`, not a new one.
 * - `withInitLayer` puts the layer right under a writable top branch (the container's rw layer), or on
 *   top of a union with no writable branch; it is always read-only.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import type { BranchSpec } from "../unionfs/config";

export interface InitLayerSpec {
  /** Written to /etc/hostname and named in /etc/hosts. */
  hostname: string;
  /** The container's /etc/resolv.conf, byte for byte. */
  resolvConf: string | Buffer;
  /** Absolute paths of directories to create empty (mount points), e.g. /proc, /dev, /sys. */
  mountpoints: readonly string[];
  /** The layers below the init layer, top first: where directories take their attributes from. */
  lowers?: readonly string[];
}

export type InitEntry =
  { type: "dir"; path: string } | { type: "file"; path: string; content: string | Buffer };

/** The mount points `run` needs: /proc and /dev always, /sys with --sys. */
export function runMountpoints(sys: boolean): string[] {
  return sys ? ["/proc", "/dev", "/sys"] : ["/proc", "/dev"];
}

/** /etc/hosts for a container sharing the host's network: loopback names and the container's name. */
export function hostsFile(hostname: string): string {
  return [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    `127.0.1.1\t${hostname}`,
    "",
  ].join("\n");
}

/** What the init layer holds, parents before children, paths relative to its root. Pure. */
export function initLayerEntries(spec: InitLayerSpec): InitEntry[] {
  const files: InitEntry[] = [
    { type: "file", path: "etc/hosts", content: hostsFile(spec.hostname) },
    { type: "file", path: "etc/hostname", content: `${spec.hostname}\n` },
    { type: "file", path: "etc/resolv.conf", content: spec.resolvConf },
  ];
  const dirs = new Set<string>();
  const addParents = (rel: string, self: boolean): void => {
    const parts = rel.split("/");
    for (let i = 1; i <= parts.length - (self ? 0 : 1); i++) dirs.add(parts.slice(0, i).join("/"));
  };
  for (const f of files) addParents(f.path, false);
  for (const m of spec.mountpoints) {
    const rel = nodePath.posix.normalize(m).replace(/^\/+|\/+$/g, "");
    if (!m.startsWith("/") || rel === "" || rel === "." || rel.split("/").includes("..")) {
      throw new Error(`init layer: '${m}' is not an absolute path below /`);
    }
    addParents(rel, true);
  }
  const dirEntries = [...dirs].sort().map((path): InitEntry => ({ type: "dir", path }));
  return [...dirEntries, ...files];
}

/** The attributes of the first directory at `rel` in `lowers`, if any. */
function lowerDirStat(lowers: readonly string[], rel: string): fs.Stats | undefined {
  for (const l of lowers) {
    try {
      const st = fs.lstatSync(nodePath.join(l, rel));
      if (st.isDirectory()) return st;
    } catch {
      // not in this layer
    }
  }
  return undefined;
}

function ensureEmptyDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (fs.readdirSync(dir).length > 0) throw new Error(`init layer: '${dir}' is not empty`);
}

/** Creates the init layer described by `spec` in `dir` (empty or missing). */
export function buildInitLayer(dir: string, spec: InitLayerSpec): void {
  ensureEmptyDir(dir);
  const entries = initLayerEntries(spec);
  for (const e of entries) {
    const p = nodePath.join(dir, e.path);
    if (e.type === "dir") fs.mkdirSync(p, { mode: 0o755 });
    else fs.writeFileSync(p, e.content, { mode: 0o644 });
    fs.chmodSync(p, e.type === "dir" ? 0o755 : 0o644);
  }
  // Directories last, deepest first: creating their entries changed their times.
  const dirs = entries.filter((e) => e.type === "dir").reverse();
  for (const e of dirs) {
    const st = lowerDirStat(spec.lowers ?? [], e.path);
    if (st === undefined) continue;
    const p = nodePath.join(dir, e.path);
    fs.lchownSync(p, st.uid, st.gid);
    fs.chmodSync(p, st.mode & 0o7777);
    fs.utimesSync(p, st.atime, st.mtime);
  }
}

/** The host's /etc/resolv.conf (the container shares its network), empty when it has none. */
export function hostResolvConf(path = "/etc/resolv.conf"): Buffer {
  try {
    return fs.readFileSync(path);
  } catch {
    return Buffer.alloc(0);
  }
}

/**
 * The init layer `run` makes: the given hostname (else the host's, whose UTS namespace the container then
 * shares), the host's resolv.conf, and `mountpoints`.
 */
export function hostInitSpec(opts: {
  hostname?: string;
  mountpoints: readonly string[];
  lowers?: readonly string[];
}): InitLayerSpec {
  const spec: InitLayerSpec = {
    hostname: opts.hostname ?? os.hostname(),
    resolvConf: hostResolvConf(),
    mountpoints: opts.mountpoints,
  };
  if (opts.lowers !== undefined) spec.lowers = opts.lowers;
  return spec;
}

/** `branches` with the init layer `dir` (read-only) under the writable top branch, else on top. */
export function withInitLayer(branches: readonly BranchSpec[], dir: string): BranchSpec[] {
  const init: BranchSpec = { path: dir, mode: "ro" };
  const top = branches[0];
  if (top?.mode === "rw") return [top, init, ...branches.slice(1)];
  return [init, ...branches];
}
