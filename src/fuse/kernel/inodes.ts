/**
 * The inode table: kernel node ids ↔ a tree of (parent, name), from which every path is derived.
 *
 * Invariants:
 * - Node id 1 is the root, path "/", always live. Ids come from a counter and are never reused.
 * - A node is *live* (in `byId`) while the kernel holds lookups on it; each entry reply adds one lookup,
 *   FORGET subtracts. At zero the node leaves `byId`; it also leaves its parent's `children` unless it
 *   still has children of its own (then it stays as a plain tree link, and a later lookup of its name
 *   revives it under the same id, so those children keep a correct path).
 * - A node's path is the names on its parent chain. Renaming a node therefore moves its whole subtree.
 * - unlink/rmdir/rename-over *detach* the replaced node: it leaves its parent's `children` (a later lookup
 *   of the name gets a fresh node) but keeps its last parent/name, which only handle-based requests use.
 * - One node per name: hard links get one node per name (the kernel accepts that).
 * - A live node answers one inode number: the first one reported for it (`pin`). The kernel answers a
 *   stat from its cached attributes or by GETATTR depending on the fields asked for (`stat -c %i` asks
 *   for STATX_INO alone), so a number that changed under a live node would show two numbers for one
 *   inode. A new number is taken only once the kernel has forgotten the node.
 */
import { fsError } from "../../errors";
import type { Attr } from "../../unionfs/types";
import { ROOT_ID, S_IFDIR, S_IFMT } from "./protocol";

export interface Inode {
  readonly id: number;
  parent: Inode | null;
  name: string;
  lookups: number;
  attached: boolean;
  /** S_IFMT bits, as last reported. */
  type: number;
  /** Inode number reported for the node while it is live (0n: not known yet). */
  ino: bigint;
  children: Map<string, Inode> | undefined;
}

/** `attr` with inode number `ino` (the node's pinned one: see `InodeTable.pin`). */
export function withIno(attr: Attr, ino: bigint): Attr {
  return attr.ino === ino ? attr : { ...attr, ino };
}

export function joinPath(parent: string, name: string): string {
  return parent === "/" ? `/${name}` : `${parent}/${name}`;
}

export class InodeTable {
  private readonly byId = new Map<number, Inode>();
  /**
   * Live node ids by inode number: one id, or a set of them for a hard-linked file looked up under several
   * names (rare: a set per node would be most of the table's memory on a tree walk).
   */
  private readonly byIno = new Map<bigint, number | Set<number>>();
  private nextId = ROOT_ID + 1;
  readonly root: Inode;

  constructor() {
    this.root = {
      id: ROOT_ID,
      parent: null,
      name: "",
      lookups: 1,
      attached: true,
      type: S_IFDIR,
      ino: 0n,
      children: undefined,
    };
    this.byId.set(ROOT_ID, this.root);
  }

  /** Number of live nodes, root included. */
  get size(): number {
    return this.byId.size;
  }

  get(id: number): Inode {
    const node = this.byId.get(id);
    if (node === undefined) throw fsError("ESTALE", `unknown node id ${id}`);
    return node;
  }

  has(id: number): boolean {
    return this.byId.has(id);
  }

  /** Path of a node; ENOENT when it or an ancestor was detached, unless `stale` allows its last path. */
  path(id: number, stale = false): string {
    let node: Inode | null = this.get(id);
    if (node === this.root) return "/";
    const names: string[] = [];
    for (; node !== null && node !== this.root; node = node.parent) {
      if (!node.attached && !stale) throw fsError("ENOENT", `node ${id} was removed`);
      names.push(node.name);
    }
    if (node === null && !stale) throw fsError("ENOENT", `node ${id} is not under the root`);
    return "/" + names.reverse().join("/");
  }

  /** True when the node is live and neither it nor an ancestor was detached. */
  isAttached(id: number): boolean {
    let node: Inode | null | undefined = this.byId.get(id);
    for (; node !== undefined && node !== null && node !== this.root; node = node.parent) {
      if (!node.attached) return false;
    }
    return node === this.root;
  }

  childPath(parentId: number, name: string): string {
    return joinPath(this.path(parentId), name);
  }

  /**
   * The node for `name` in `parentId` after a successful lookup of an object of type `mode`, with one
   * more lookup. A known node of another file type is detached and replaced by a fresh one.
   */
  lookup(parentId: number, name: string, mode: number, ino: bigint): Inode {
    const parent = this.get(parentId);
    let node = parent.children?.get(name);
    if (node !== undefined && node.type !== (mode & S_IFMT)) {
      this.detachNode(node);
      node = undefined;
    }
    if (node === undefined) {
      node = {
        id: this.nextId++,
        parent,
        name,
        lookups: 0,
        attached: true,
        type: mode & S_IFMT,
        ino,
        children: undefined,
      };
      (parent.children ??= new Map()).set(name, node);
    }
    if (node.lookups === 0) {
      this.byId.set(node.id, node);
      node.ino = ino;
      this.index(node);
    } else {
      this.pin(node.id, ino);
    }
    node.lookups += 1;
    return node;
  }

  /** Drops `n` lookups (FORGET); the root is never dropped. */
  forget(id: number, n: number): void {
    const node = this.byId.get(id);
    if (node === undefined || node === this.root) return;
    node.lookups -= n;
    if (node.lookups > 0) return;
    node.lookups = 0;
    this.byId.delete(id);
    this.unindex(node);
    this.prune(node);
  }

  /**
   * The inode number to report for node `id` when the core reports `ino`: the live node's own once it
   * has one (recorded here when it has none yet), else `ino`.
   */
  pin(id: number, ino: bigint): bigint {
    const node = this.byId.get(id);
    if (node === undefined) return ino;
    if (node.ino === 0n && ino !== 0n) {
      node.ino = ino;
      this.index(node);
    }
    return node.ino;
  }

  /** The other live nodes with the same inode number (names of one hard-linked file). */
  aliases(id: number): number[] {
    const node = this.byId.get(id);
    const ids = node === undefined ? undefined : this.byIno.get(node.ino);
    if (ids === undefined || typeof ids === "number") return [];
    return [...ids].filter((other) => other !== id);
  }

  /** The node id of `name` in `parentId`, if it is known. */
  childId(parentId: number, name: string): number | undefined {
    return this.byId.get(parentId)?.children?.get(name)?.id;
  }

  private index(node: Inode): void {
    const ids = this.byIno.get(node.ino);
    if (ids === undefined) this.byIno.set(node.ino, node.id);
    else if (typeof ids !== "number") ids.add(node.id);
    else if (ids !== node.id) this.byIno.set(node.ino, new Set([ids, node.id]));
  }

  private unindex(node: Inode): void {
    const ids = this.byIno.get(node.ino);
    if (ids === node.id) this.byIno.delete(node.ino);
    else if (typeof ids === "object" && ids.delete(node.id) && ids.size === 1) {
      for (const last of ids) this.byIno.set(node.ino, last);
    }
  }

  /** The object at `name` in `parentId` is gone (unlink, rmdir): detach its node, if known. */
  removed(parentId: number, name: string): void {
    const node = this.byId.get(parentId)?.children?.get(name);
    if (node !== undefined) this.detachNode(node);
  }

  /**
   * The node's name must get a fresh node at its next lookup (the kernel cannot switch the node's open
   * mode); the node itself stays for the handles already open on it.
   */
  retire(id: number): void {
    const node = this.byId.get(id);
    if (node !== undefined && node !== this.root && node.attached) this.detachNode(node);
  }

  /** Mirrors a successful rename(2); `exchange` for RENAME_EXCHANGE. */
  renamed(
    oldParentId: number,
    oldName: string,
    newParentId: number,
    newName: string,
    exchange: boolean,
  ): void {
    const oldParent = this.get(oldParentId);
    const newParent = this.get(newParentId);
    const src = oldParent.children?.get(oldName);
    const dst = newParent.children?.get(newName);
    if (src === dst) return;
    if (src !== undefined) this.unlinkChild(src);
    if (dst !== undefined) {
      if (exchange) this.unlinkChild(dst);
      else this.detachNode(dst);
    }
    if (src !== undefined) this.linkChild(src, newParent, newName);
    if (dst !== undefined && exchange) this.linkChild(dst, oldParent, oldName);
  }

  private linkChild(node: Inode, parent: Inode, name: string): void {
    node.parent = parent;
    node.name = name;
    (parent.children ??= new Map()).set(name, node);
  }

  private unlinkChild(node: Inode): void {
    const siblings = node.parent?.children;
    if (siblings?.get(node.name) === node) siblings.delete(node.name);
  }

  private detachNode(node: Inode): void {
    this.unlinkChild(node);
    node.attached = false;
    if (node.parent !== null) this.prune(node.parent);
  }

  /** Removes dead nodes (no lookups, no children) from the tree, walking up. */
  private prune(start: Inode): void {
    for (let node: Inode | null = start; node !== null && node !== this.root; node = node.parent) {
      if (node.lookups > 0 || (node.children !== undefined && node.children.size > 0)) return;
      this.unlinkChild(node);
    }
  }
}
