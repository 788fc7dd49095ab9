/**
 * The tree an archive's members make, as extracting it into an empty directory would: the inodes
 * (nodes) and the names (entries) that lead to them.
 *
 * Invariants:
 * - `nodes[0]` is the root directory; every other node is reached by at least one entry. Node indices
 *   follow first appearance in the archive, so the same archive always gives the same numbering.
 * - Repeated members: the last one wins, as extraction would. A directory over a directory only changes
 *   its attributes (its contents stay); anything else replaces the name, and a directory replaced by a
 *   non-directory takes its subtree with it. A hard link names the node its target names at that point
 *   of the archive (a later member at the target's path does not change it).
 * - A member whose parents are missing (a/b/c with no a/) gets them as directories 0755 owned by root,
 *   with the archive's mtime; a parent that is a non-directory is replaced by such a directory.
 * - `nlink` is the number of names of a non-directory and 2 + subdirectories for a directory.
 */
import { ArchiveError, showName } from "./header";
import { S_IFDIR, type Attrs, type Member } from "./scan";

/** An inode of the tree: what its member said, and how many names it has. */
export interface TarNode extends Attrs {
  nlink: number;
}

export interface TarTree {
  /** How many nodes there are; `node(i)` for i in [0, count) gives each (0 is the root). */
  readonly count: number;
  node(i: number): TarNode;
  /** Every name in the layer ("" is the root, "/a/b" below it) → its node. */
  readonly entries: ReadonlyMap<string, number>;
  /** A directory's path → the names in it (archive order); made on first use. */
  readonly children: ReadonlyMap<string, string[]>;
}

/**
 * A tree over nodes `node(i)`, i < `count`, with its children listed on first use; `entries` may be
 * given as the function that makes them, called on first use too (a saved index: see store.ts).
 */
export function treeOf(
  count: number,
  node: (i: number) => TarNode,
  entries: Map<string, number> | (() => Map<string, number>),
): TarTree {
  let names = typeof entries === "function" ? undefined : entries;
  const named = (): Map<string, number> => (names ??= (entries as () => Map<string, number>)());
  let children: Map<string, string[]> | undefined;
  return {
    count,
    node,
    get entries() {
      return named();
    },
    get children() {
      return (children ??= childrenOf(named().keys()));
    },
  };
}

function implicitDir(timeNs: bigint): TarNode {
  return {
    type: S_IFDIR,
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    offset: 0,
    mtimeNs: timeNs,
    atimeNs: timeNs,
    ctimeNs: timeNs,
    rdevMajor: 0,
    rdevMinor: 0,
    nlink: 0,
  };
}

function nodeOf(m: Member): TarNode {
  const { path: _path, hardlink: _hardlink, ...attrs } = m;
  return { ...attrs, nlink: 0 };
}

/** The names in each directory, from every entry's path. */
export function childrenOf(paths: Iterable<string>): Map<string, string[]> {
  const children = new Map<string, string[]>();
  for (const p of paths) {
    if (p === "") continue;
    const slash = p.lastIndexOf("/");
    const parent = p.slice(0, slash);
    let list = children.get(parent);
    if (list === undefined) children.set(parent, (list = []));
    list.push(p.slice(slash + 1));
  }
  return children;
}

/** A member's path as its name in the archive, for a message. */
function show(p: string): string {
  return showName(p.slice(1));
}

/** Builds the tree of `members` (archive order); `implicitTimeNs` dates the directories made up. */
export function buildTree(members: readonly Member[], implicitTimeNs: bigint): TarTree {
  const b = new Builder(implicitTimeNs);
  for (const m of members) b.place(m);
  return b.finish();
}

class Builder {
  private readonly nodes: TarNode[];
  private readonly entries = new Map<string, number>([["", 0]]);

  constructor(private readonly implicitTimeNs: bigint) {
    this.nodes = [implicitDir(implicitTimeNs)];
  }

  private isDir(path: string): boolean {
    const i = this.entries.get(path);
    return i !== undefined && this.nodes[i]!.type === S_IFDIR;
  }

  place(m: Member): void {
    if (m.path === "") {
      if (m.type !== S_IFDIR || m.hardlink !== undefined)
        throw new ArchiveError("the root member is not a directory");
      this.nodes[0] = nodeOf(m);
      return;
    }
    this.parents(m.path);
    const wasDir = this.isDir(m.path);
    if (m.hardlink !== undefined) {
      const target = this.entries.get(m.hardlink);
      if (target === undefined) {
        throw new ArchiveError(
          `hard link '${show(m.path)}' to '${show(m.hardlink)}': no such member before it`,
        );
      }
      if (this.nodes[target]!.type === S_IFDIR) {
        throw new ArchiveError(`hard link '${show(m.path)}' to directory '${show(m.hardlink)}'`);
      }
      if (wasDir) this.dropSubtree(m.path);
      this.entries.set(m.path, target);
    } else if (m.type === S_IFDIR && wasDir) {
      this.nodes[this.entries.get(m.path)!] = nodeOf(m);
    } else {
      if (wasDir) this.dropSubtree(m.path);
      this.entries.set(m.path, this.nodes.push(nodeOf(m)) - 1);
    }
  }

  /** Makes every ancestor of `path` a directory. */
  private parents(path: string): void {
    for (let at = path.indexOf("/", 1); at > 0; at = path.indexOf("/", at + 1)) {
      const p = path.slice(0, at);
      if (this.isDir(p)) continue;
      this.entries.set(p, this.nodes.push(implicitDir(this.implicitTimeNs)) - 1);
    }
  }

  private dropSubtree(path: string): void {
    const prefix = `${path}/`;
    for (const p of this.entries.keys()) if (p.startsWith(prefix)) this.entries.delete(p);
  }

  /** Drops unreachable nodes (renumbering in order), counts links. */
  finish(): TarTree {
    const used = new Uint8Array(this.nodes.length);
    used[0] = 1;
    for (const i of this.entries.values()) used[i] = 1;
    const renumber = new Int32Array(this.nodes.length);
    const nodes: TarNode[] = [];
    this.nodes.forEach((n, i) => {
      if (used[i]) renumber[i] = nodes.push(n) - 1;
    });
    const entries = new Map<string, number>();
    for (const [p, i] of this.entries) entries.set(p, renumber[i]!);
    for (const n of nodes) n.nlink = n.type === S_IFDIR ? 2 : 0;
    for (const [p, i] of entries) {
      if (p === "") continue;
      const n = nodes[i]!;
      if (n.type === S_IFDIR) nodes[entries.get(p.slice(0, p.lastIndexOf("/")))!]!.nlink++;
      else n.nlink++;
    }
    return treeOf(nodes.length, (i) => nodes[i]!, entries);
  }
}
