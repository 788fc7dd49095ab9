/**
 * The inode table: kernel node ids ↔ a tree of (parent, name), from which every path is derived.
 *
 * Invariants:
 * - Node id 1 is the root, path "/", always live. Any other node gets, when it becomes live, the stable
 *   id of its inode number (nodeids.ts) unless a live node holds that id already, else an ephemeral id
 *   that is never handed out again. So the kernel's file handles (node id, generation) keep naming an
 *   object after copy-up and rename, and after a remount of the same layers; an id is reused only for
 *   the same inode number, and only once the kernel forgot it.
 * - A node's generation is fixed while it is live: every entry reply carries it (`lookup` stamps it on
 *   the attributes it is given), so the kernel never sees one node id with two generations.
 * - A node is *live* (in `byId`) while the kernel holds lookups on it; each entry reply adds one lookup,
 *   FORGET subtracts. At zero the node leaves `byId` and its whereabouts (parent id, name) are
 *   remembered (bounded, see nodeids.ts) so that a handle of it can be resolved again; it also leaves
 *   its parent's `children` unless it still has children of its own (then it stays as a plain tree
 *   link, and a later lookup of its name revives it, so those children keep a correct path).
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
import { FIRST_EPHEMERAL_ID, Remembered, stableIdOf, type Whereabouts } from "./nodeids";
import { ROOT_ID, S_IFDIR, S_IFMT } from "./protocol";

export interface Inode {
  /** Changes only while the node is not live (the kernel does not know it then). */
  id: number;
  parent: Inode | null;
  name: string;
  lookups: number;
  attached: boolean;
  /** S_IFMT bits, as last reported. */
  type: number;
  /** Inode number reported for the node while it is live (0n: not known yet). */
  ino: bigint;
  /** Generation sent with the node's entries (fixed while live). */
  gen: number;
  children: Map<string, Inode> | undefined;
  /** When the last entry reply naming the node was made (`clockS()`); 0: never while live. */
  replied: number;
  /** What GETXATTR knows of the object's extended attributes (see `Xattrs`). */
  xattrs: Xattrs;
}

/** An object's extended attributes, as far as GETXATTR knows: not asked yet, none at all, or some. */
export const enum Xattrs {
  Unknown = 0,
  None = 1,
  Some = 2,
}

const STARTED_MS = Date.now() - 1000;

/**
 * Whole seconds since shortly before this module loaded (at least 1): a small integer, which V8 keeps in
 * the node itself, where a Date.now() would be a boxed number per node.
 */
export function clockS(): number {
  return Math.floor((Date.now() - STARTED_MS) / 1000);
}

/** `attr` with inode number `ino` (the node's pinned one: see `InodeTable.pin`). */
export function withIno(attr: Attr, ino: bigint): Attr {
  return attr.ino === ino ? attr : { ...attr, ino };
}

/** What an entry reply tells the table about the object it names; `gen` is overwritten with the node's. */
export interface EntryAttr {
  mode: number;
  ino: bigint;
  gen?: number;
}

/** A path to a node the kernel forgot: from a node of the tree, the names (and ids) below it. */
export interface Route {
  base: Inode;
  steps: Array<{ id: number; name: string; ino: bigint }>;
}

export function joinPath(parent: string, name: string): string {
  return parent === "/" ? `/${name}` : `${parent}/${name}`;
}

/** Deepest chain of remembered parents followed before giving up (a stale memory may hold a cycle). */
const MAX_ROUTE = 4096;

export class InodeTable {
  private readonly byId = new Map<number, Inode>();
  /**
   * Live node ids by inode number, for the nodes whose id is not their number's stable id (`indexed`): a
   * second name of a hard-linked file, a number outside the stable domain. One id, or a set of them.
   * Every other live node is found as `byId.get(stableIdOf(ino))`, so a tree walk adds nothing here.
   */
  private readonly byIno = new Map<bigint, number | Set<number>>();
  private nextEphemeral = FIRST_EPHEMERAL_ID;
  /** Where forgotten nodes were. */
  readonly remembered = new Remembered();
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
      gen: 0,
      children: undefined,
      replied: 0,
      xattrs: Xattrs.Unknown,
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
    return this.pathOf(this.get(id), stale);
  }

  private pathOf(start: Inode, stale = false): string {
    if (start === this.root) return "/";
    const names: string[] = [];
    let node: Inode | null = start;
    for (; node !== null && node !== this.root; node = node.parent) {
      if (!node.attached && !stale) throw fsError("ENOENT", `node ${start.id} was removed`);
      names.push(node.name);
    }
    if (node === null && !stale) throw fsError("ENOENT", `node ${start.id} is not under the root`);
    return "/" + names.reverse().join("/");
  }

  /** True when the node is live and neither it nor an ancestor was detached. */
  isAttached(id: number): boolean {
    const node = this.byId.get(id);
    return node !== undefined && this.attachedNode(node);
  }

  private attachedNode(start: Inode): boolean {
    let node: Inode | null = start;
    for (; node !== null && node !== this.root; node = node.parent) {
      if (!node.attached) return false;
    }
    return node === this.root;
  }

  childPath(parentId: number, name: string): string {
    return joinPath(this.path(parentId), name);
  }

  /**
   * The node for `name` in `parentId` after a successful lookup of the object `attr` describes, with
   * one more lookup; `attr.gen` is set to the node's generation. A known node of another file type is
   * detached and replaced by a fresh one.
   */
  lookup(parentId: number, name: string, attr: EntryAttr): Inode {
    return this.lookupIn(this.get(parentId), name, attr);
  }

  private lookupIn(parent: Inode, name: string, attr: EntryAttr): Inode {
    let node = parent.children?.get(name);
    if (node !== undefined && node.type !== (attr.mode & S_IFMT)) {
      this.detachNode(node);
      node = undefined;
    }
    if (node === undefined) {
      node = this.newNode(parent, name, attr, 0);
      (parent.children ??= new Map()).set(name, node);
    }
    this.count(node, attr);
    return node;
  }

  private newNode(parent: Inode, name: string, attr: EntryAttr, id: number): Inode {
    const type = attr.mode & S_IFMT;
    return {
      id,
      parent,
      name,
      lookups: 0,
      attached: true,
      type,
      ino: attr.ino,
      gen: 0,
      children: undefined,
      replied: 0,
      xattrs: Xattrs.Unknown,
    };
  }

  /** One more lookup of a node of the tree; one that was not live gets a free id and `attr`'s generation. */
  private count(node: Inode, attr: EntryAttr, id?: number): void {
    if (node.lookups === 0 && node !== this.root) {
      node.id = id ?? this.freeId(attr.ino);
      node.gen = attr.gen ?? 0;
      node.ino = attr.ino;
      this.byId.set(node.id, node);
      this.index(node);
    } else {
      this.pin(node.id, attr.ino);
    }
    node.lookups += 1;
    node.replied = clockS();
    attr.gen = node.gen;
  }

  /** The stable id of `ino` when no live node holds it, else a fresh ephemeral one. */
  private freeId(ino: bigint): number {
    const id = stableIdOf(ino);
    return id !== undefined && !this.byId.has(id) ? id : this.nextEphemeral++;
  }

  /**
   * Live node `id` itself, for a lookup of "." that raced with its FORGET, counted as one more lookup.
   * ENOENT when it was removed.
   */
  lookupSelf<A extends EntryAttr>(id: number, attrOf: (path: string) => A): { node: Inode; attr: A } {
    const node = this.get(id);
    const attr = attrOf(this.pathOf(node));
    this.count(node, attr);
    return { node, attr };
  }

  /**
   * The parent of live node `id` for a lookup of "..", counted as one lookup (revived with a free id when
   * the kernel had forgotten it). ENOENT when the node was removed.
   */
  lookupParent<A extends EntryAttr>(id: number, attrOf: (path: string) => A): { node: Inode; attr: A } {
    const child = this.get(id);
    if (!this.attachedNode(child)) throw fsError("ENOENT", `node ${id} was removed`);
    const node = child.parent ?? this.root;
    const attr = attrOf(this.pathOf(node));
    this.count(node, attr);
    return { node, attr };
  }

  /**
   * The way to a node the kernel no longer knows, from what was remembered of it and its ancestors up to a
   * node of the tree; undefined when some link is missing. Not checked: the caller compares the object
   * at the route's path with what it expects.
   */
  routeTo(id: number): Route | undefined {
    const steps: Route["steps"] = [];
    for (let at = id; steps.length < MAX_ROUTE;) {
      const live = this.byId.get(at);
      if (live !== undefined) {
        return this.attachedNode(live) ? { base: live, steps: steps.reverse() } : undefined;
      }
      const where: Whereabouts | undefined = this.remembered.get(at);
      if (where === undefined) return undefined;
      steps.push({ id: at, name: where.name, ino: where.ino });
      at = where.parent;
    }
    return undefined;
  }

  /** The path a route leads to. */
  routePath(route: Route): string {
    let path = this.pathOf(route.base);
    for (const step of route.steps) path = joinPath(path, step.name);
    return path;
  }

  /**
   * Makes the node at the end of `route` live as node `id`, with one lookup (a lookup of "." for a file
   * handle): directories on the way that the tree lacks are added as plain links. Undefined when the
   * name is held by another live node (the kernel knows the object under another id).
   */
  place(route: Route, id: number, attr: EntryAttr): Inode | undefined {
    if (this.byId.has(id)) return undefined;
    let parent = route.base;
    const last = route.steps.length - 1;
    for (const [i, step] of route.steps.entries()) {
      const mode = i === last ? attr.mode : S_IFDIR;
      let node = parent.children?.get(step.name);
      if (node === undefined) {
        node = this.newNode(parent, step.name, { mode, ino: step.ino }, step.id);
        (parent.children ??= new Map()).set(step.name, node);
      } else if (node.type !== (mode & S_IFMT) || (i === last && node.lookups > 0)) {
        break;
      }
      if (i === last) {
        this.count(node, attr, id);
        this.remembered.delete(id);
        return node;
      }
      parent = node;
    }
    this.prune(parent); // links added on the way, now leading nowhere
    return undefined;
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
    if (node.attached && node.parent !== null) {
      this.remembered.set(id, { parent: node.parent.id, name: node.name, ino: node.ino });
    }
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

  /** The id of live node `path` ("/" or "/a/b"), found by the names the table knows. */
  idOfPath(path: string): number | undefined {
    let node: Inode | undefined = this.root;
    for (const name of path.split("/")) {
      if (name !== "") node = node.children?.get(name);
      if (node === undefined) return undefined;
    }
    return this.byId.get(node.id) === node ? node.id : undefined;
  }

  /** The other live nodes with the same inode number (names of one hard-linked file). */
  aliases(id: number): number[] {
    const node = this.byId.get(id);
    if (node === undefined) return [];
    const out: number[] = [];
    const stable = stableIdOf(node.ino);
    if (stable !== undefined && stable !== id && this.byId.get(stable)?.ino === node.ino) out.push(stable);
    const ids = this.byIno.get(node.ino);
    if (typeof ids === "number") {
      if (ids !== id) out.push(ids);
    } else if (ids !== undefined) for (const other of ids) if (other !== id) out.push(other);
    return out;
  }

  /** The live node of `name` in `parentId` (the kernel holds lookups on it under that name), if any. */
  liveChild(parentId: number, name: string): Inode | undefined {
    const node = this.byId.get(parentId)?.children?.get(name);
    return node !== undefined && node.lookups > 0 && node.attached ? node : undefined;
  }

  /** The node id of `name` in `parentId`, if it is known. */
  childId(parentId: number, name: string): number | undefined {
    return this.byId.get(parentId)?.children?.get(name)?.id;
  }

  /** Whether `node` is found through `byIno` (its id is not its inode number's stable id). */
  private indexed(node: Inode): boolean {
    return stableIdOf(node.ino) !== node.id;
  }

  private index(node: Inode): void {
    if (!this.indexed(node)) return;
    const ids = this.byIno.get(node.ino);
    if (ids === undefined) this.byIno.set(node.ino, node.id);
    else if (typeof ids !== "number") ids.add(node.id);
    else if (ids !== node.id) this.byIno.set(node.ino, new Set([ids, node.id]));
  }

  private unindex(node: Inode): void {
    if (!this.indexed(node)) return;
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
    this.remembered.delete(node.id);
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
