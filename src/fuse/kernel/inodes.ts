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
 * - Nodes are slots of typed-array columns (node-slots.ts) indexed by id and by (parent, name)
 *   (slot-index.ts). A slot is released once the node is neither live, nor in its parent's children,
 *   nor anyone's parent; callers only ever see ids and `NodeInfo` snapshots, never slots.
 * - A live node answers one inode number: the first one reported for it (`pin`). The kernel answers a
 *   stat from its cached attributes or by GETATTR depending on the fields asked for (`stat -c %i` asks
 *   for STATX_INO alone), so a number that changed under a live node would show two numbers for one
 *   inode. A new number is taken only once the kernel has forgotten the node.
 */
import { fsError } from "../../errors";
import type { Attr } from "../../unionfs/types";
import { Flag, NodeSlots, NONE, XATTR_MASK, XATTR_SHIFT } from "./node-slots";
import { FIRST_EPHEMERAL_ID, Remembered, stableIdOf, type Whereabouts } from "./nodeids";
import { ROOT_ID, S_IFDIR, S_IFMT } from "./protocol";
import { hashNumber, hashString, SlotIndex } from "./slot-index";

/** What the table knows of a node at the time it is asked (a copy: it does not follow later changes). */
export interface NodeInfo {
  readonly id: number;
  /** Inode number reported for the node while it is live (0n: not known yet). */
  readonly ino: bigint;
  /** S_IFMT bits, as last reported. */
  readonly type: number;
  readonly lookups: number;
  /** When the last entry reply naming the node was made (`clockS()`); 0: never while live. */
  readonly replied: number;
  readonly attached: boolean;
  /** What GETXATTR knows of the object's extended attributes. */
  readonly xattrs: Xattrs;
}

/** An object's extended attributes, as far as GETXATTR knows: not asked yet, none at all, or some. */
export const enum Xattrs {
  Unknown = 0,
  None = 1,
  Some = 2,
}

const STARTED_MS = Date.now() - 1000;

/** Whole seconds since shortly before this module loaded (at least 1): small enough for a Uint32Array. */
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

/** A path to a node the kernel forgot: from a node of the tree (`base`, opaque), the names below it. */
export interface Route {
  readonly base: number;
  steps: Array<{ id: number; name: string; ino: bigint }>;
}

export function joinPath(parent: string, name: string): string {
  return parent === "/" ? `/${name}` : `${parent}/${name}`;
}

/** Deepest chain of remembered parents followed before giving up (a stale memory may hold a cycle). */
const MAX_ROUTE = 4096;

const typeOf = (mode: number): number => (mode & S_IFMT) >>> 12;

/** Hash of a child's key in the index of children. */
const childHash = (parent: number, name: string): number =>
  hashString(name, Math.imul(parent + 1, 0x9e3779b1));

export class InodeTable {
  private readonly n = new NodeSlots();
  /** Live nodes (and the root) by id. */
  private readonly byId = new SlotIndex((s) => hashNumber(this.n.ids[s] as number));
  /** Nodes of the tree by (parent slot, name). */
  private readonly children = new SlotIndex((s) => this.n.hashes[s] as number);
  /**
   * Live node ids by inode number, for the nodes whose id is not their number's stable id (`indexed`): a
   * second name of a hard-linked file, a number outside the stable domain. One id, or a set of them.
   * Every other live node is found by `stableIdOf(ino)`, so a tree walk adds nothing here.
   */
  private readonly byIno = new Map<bigint, number | Set<number>>();
  private nextEphemeral = FIRST_EPHEMERAL_ID;
  /** Where forgotten nodes were. */
  readonly remembered = new Remembered();
  private readonly root: number;

  constructor() {
    const n = this.n;
    this.root = n.alloc();
    n.ids[this.root] = ROOT_ID;
    n.lookups[this.root] = 1;
    n.types[this.root] = typeOf(S_IFDIR);
    n.flags[this.root] = Flag.Attached;
    n.names[this.root] = "";
    this.byId.add(this.root);
  }

  /** Number of live nodes, root included. */
  get size(): number {
    return this.byId.size;
  }

  /** Slots in use: live nodes and the links of the tree between them (for tests and logs). */
  get slots(): number {
    return this.n.used;
  }

  get(id: number): NodeInfo {
    return this.info(this.live(id));
  }

  has(id: number): boolean {
    return this.slotOf(id) !== NONE;
  }

  /** Path of a node; ENOENT when it or an ancestor was detached, unless `stale` allows its last path. */
  path(id: number, stale = false): string {
    return this.pathOf(this.live(id), stale);
  }

  /** True when the node is live and neither it nor an ancestor was detached. */
  isAttached(id: number): boolean {
    const s = this.slotOf(id);
    return s !== NONE && this.attachedSlot(s);
  }

  childPath(parentId: number, name: string): string {
    return joinPath(this.path(parentId), name);
  }

  /** The inode number of live node `id`'s parent (0n for the root, or when not known). */
  parentIno(id: number): bigint {
    const p = this.n.parents[this.live(id)] as number;
    return p === NONE ? 0n : (this.n.inos[p] as bigint);
  }

  setXattrs(id: number, x: Xattrs): void {
    const s = this.live(id);
    this.n.flags[s] = ((this.n.flags[s] as number) & ~XATTR_MASK) | (x << XATTR_SHIFT);
  }

  /**
   * The node for `name` in `parentId` after a successful lookup of the object `attr` describes, with
   * one more lookup; `attr.gen` is set to the node's generation. A known node of another file type is
   * detached and replaced by a fresh one.
   */
  lookup(parentId: number, name: string, attr: EntryAttr): NodeInfo {
    const parent = this.live(parentId);
    let s = this.childSlot(parent, name);
    if (s !== NONE && this.n.types[s] !== typeOf(attr.mode)) {
      this.detach(s);
      s = NONE;
    }
    if (s === NONE) s = this.newChild(parent, name, attr.mode, attr.ino, 0);
    this.count(s, attr);
    return this.info(s);
  }

  /**
   * Live node `id` itself, for a lookup of "." that raced with its FORGET, counted as one more lookup.
   * ENOENT when it was removed.
   */
  lookupSelf<A extends EntryAttr>(id: number, attrOf: (path: string) => A): { node: NodeInfo; attr: A } {
    const s = this.live(id);
    const attr = attrOf(this.pathOf(s));
    this.count(s, attr);
    return { node: this.info(s), attr };
  }

  /**
   * The parent of live node `id` for a lookup of "..", counted as one lookup (revived with a free id when
   * the kernel had forgotten it). ENOENT when the node was removed.
   */
  lookupParent<A extends EntryAttr>(id: number, attrOf: (path: string) => A): { node: NodeInfo; attr: A } {
    const child = this.live(id);
    if (!this.attachedSlot(child)) throw fsError("ENOENT", `node ${id} was removed`);
    const p = this.n.parents[child] as number;
    const s = p === NONE ? this.root : p;
    const attr = attrOf(this.pathOf(s));
    this.count(s, attr);
    return { node: this.info(s), attr };
  }

  /**
   * The way to a node the kernel no longer knows, from what was remembered of it and its ancestors up to a
   * node of the tree; undefined when some link is missing. Not checked: the caller compares the object
   * at the route's path with what it expects.
   */
  routeTo(id: number): Route | undefined {
    const steps: Route["steps"] = [];
    for (let at = id; steps.length < MAX_ROUTE;) {
      const live = this.slotOf(at);
      if (live !== NONE) return this.attachedSlot(live) ? { base: live, steps: steps.reverse() } : undefined;
      const where: Whereabouts | undefined = this.remembered.get(at);
      if (where === undefined) return undefined;
      steps.push({ id: at, name: where.name, ino: where.ino });
      at = where.parent;
    }
    return undefined;
  }

  /** The path a route leads to (the route must come from `routeTo` with no change to the table since). */
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
  place(route: Route, id: number, attr: EntryAttr): NodeInfo | undefined {
    if (this.has(id)) return undefined;
    let parent = route.base;
    const last = route.steps.length - 1;
    for (const [i, step] of route.steps.entries()) {
      const mode = i === last ? attr.mode : S_IFDIR;
      let s = this.childSlot(parent, step.name);
      if (s === NONE) {
        s = this.newChild(parent, step.name, mode, step.ino, step.id);
      } else if (this.n.types[s] !== typeOf(mode) || (i === last && (this.n.lookups[s] as number) > 0)) {
        break;
      }
      if (i === last) {
        this.count(s, attr, id);
        this.remembered.delete(id);
        return this.info(s);
      }
      parent = s;
    }
    this.prune(parent); // links added on the way, now leading nowhere
    return undefined;
  }

  /** Drops `count` lookups (FORGET); the root is never dropped. */
  forget(id: number, count: number): void {
    const s = this.slotOf(id);
    if (s === NONE || s === this.root) return;
    const n = this.n;
    const left = (n.lookups[s] as number) - count;
    if (left > 0) {
      n.lookups[s] = left;
      return;
    }
    n.lookups[s] = 0;
    this.byId.remove(s);
    this.unindex(s);
    const parent = n.parents[s] as number;
    if (((n.flags[s] as number) & Flag.Attached) !== 0 && parent !== NONE) {
      this.remembered.set(id, {
        parent: n.ids[parent] as number,
        name: n.names[s] as string,
        ino: n.inos[s] as bigint,
      });
    }
    this.prune(s);
  }

  /**
   * The inode number to report for node `id` when the core reports `ino`: the live node's own once it
   * has one (recorded here when it has none yet), else `ino`.
   */
  pin(id: number, ino: bigint): bigint {
    const s = this.slotOf(id);
    if (s === NONE) return ino;
    if (this.n.inos[s] === 0n && ino !== 0n) {
      this.n.inos[s] = ino;
      this.index(s);
    }
    return this.n.inos[s] as bigint;
  }

  /** The id of live node `path` ("/" or "/a/b"), found by the names the table knows. */
  idOfPath(path: string): number | undefined {
    let s = this.root;
    for (const name of path.split("/")) {
      if (name !== "") s = this.childSlot(s, name);
      if (s === NONE) return undefined;
    }
    const id = this.n.ids[s] as number;
    return this.slotOf(id) === s ? id : undefined;
  }

  /** The other live nodes with the same inode number (names of one hard-linked file). */
  aliases(id: number): number[] {
    const s = this.slotOf(id);
    if (s === NONE) return [];
    const ino = this.n.inos[s] as bigint;
    const out: number[] = [];
    const stable = stableIdOf(ino);
    if (stable !== undefined && stable !== id) {
      const other = this.slotOf(stable);
      if (other !== NONE && this.n.inos[other] === ino) out.push(stable);
    }
    const ids = this.byIno.get(ino);
    if (typeof ids === "number") {
      if (ids !== id) out.push(ids);
    } else if (ids !== undefined) for (const other of ids) if (other !== id) out.push(other);
    return out;
  }

  /** The live node of `name` in `parentId` (the kernel holds lookups on it under that name), if any. */
  liveChild(parentId: number, name: string): NodeInfo | undefined {
    const s = this.childOf(parentId, name);
    const live =
      s !== NONE && (this.n.lookups[s] as number) > 0 && ((this.n.flags[s] as number) & Flag.Attached) !== 0;
    return live ? this.info(s) : undefined;
  }

  /** The node id of `name` in `parentId`, if it is known. */
  childId(parentId: number, name: string): number | undefined {
    const s = this.childOf(parentId, name);
    return s === NONE ? undefined : (this.n.ids[s] as number);
  }

  /** The object at `name` in `parentId` is gone (unlink, rmdir): detach its node, if known. */
  removed(parentId: number, name: string): void {
    const s = this.childOf(parentId, name);
    if (s !== NONE) this.detach(s);
  }

  /**
   * The node's name must get a fresh node at its next lookup (the kernel cannot switch the node's open
   * mode); the node itself stays for the handles already open on it.
   */
  retire(id: number): void {
    const s = this.slotOf(id);
    if (s !== NONE && s !== this.root && ((this.n.flags[s] as number) & Flag.Attached) !== 0) this.detach(s);
  }

  /** Mirrors a successful rename(2); `exchange` for RENAME_EXCHANGE. */
  renamed(
    oldParentId: number,
    oldName: string,
    newParentId: number,
    newName: string,
    exchange: boolean,
  ): void {
    const oldParent = this.live(oldParentId);
    const newParent = this.live(newParentId);
    const src = this.childSlot(oldParent, oldName);
    const dst = this.childSlot(newParent, newName);
    if (src === dst) return;
    if (src !== NONE) this.unlinkChild(src);
    if (dst !== NONE) {
      if (exchange) this.unlinkChild(dst);
      else this.detach(dst);
    }
    if (src !== NONE) this.linkChild(src, newParent, newName);
    if (dst !== NONE && exchange) this.linkChild(dst, oldParent, oldName);
  }

  // --- slots -------------------------------------------------------------------------------------------

  private info(s: number): NodeInfo {
    const n = this.n;
    return {
      id: n.ids[s] as number,
      ino: n.inos[s] as bigint,
      type: (n.types[s] as number) << 12,
      lookups: n.lookups[s] as number,
      replied: n.replied[s] as number,
      attached: ((n.flags[s] as number) & Flag.Attached) !== 0,
      xattrs: (((n.flags[s] as number) & XATTR_MASK) >> XATTR_SHIFT) as Xattrs,
    };
  }

  /** The slot of live node `id`, or NONE. */
  private slotOf(id: number): number {
    const ids = this.n.ids;
    const idx = this.byId;
    for (let i = idx.start(hashNumber(id)); ; i = idx.next(i)) {
      const s = idx.at(i);
      if (s < 0 || ids[s] === id) return s < 0 ? NONE : s;
    }
  }

  private live(id: number): number {
    const s = this.slotOf(id);
    if (s === NONE) throw fsError("ESTALE", `unknown node id ${id}`);
    return s;
  }

  /** The child slot of `name` under slot `parent`, or NONE. */
  private childSlot(parent: number, name: string): number {
    const n = this.n;
    const idx = this.children;
    for (let i = idx.start(childHash(parent, name)); ; i = idx.next(i)) {
      const s = idx.at(i);
      if (s < 0) return NONE;
      if (n.parents[s] === parent && n.names[s] === name) return s;
    }
  }

  /** The child slot of `name` under live node `parentId`, or NONE (also when the parent is not live). */
  private childOf(parentId: number, name: string): number {
    const parent = this.slotOf(parentId);
    return parent === NONE ? NONE : this.childSlot(parent, name);
  }

  private pathOf(start: number, stale = false): string {
    if (start === this.root) return "/";
    const n = this.n;
    const names: string[] = [];
    let s = start;
    for (; s !== NONE && s !== this.root; s = n.parents[s] as number) {
      if (((n.flags[s] as number) & Flag.Attached) === 0 && !stale) {
        throw fsError("ENOENT", `node ${n.ids[start]} was removed`);
      }
      names.push(n.names[s] as string);
    }
    if (s === NONE && !stale) throw fsError("ENOENT", `node ${n.ids[start]} is not under the root`);
    return "/" + names.reverse().join("/");
  }

  private attachedSlot(start: number): boolean {
    const n = this.n;
    let s = start;
    for (; s !== NONE && s !== this.root; s = n.parents[s] as number) {
      if (((n.flags[s] as number) & Flag.Attached) === 0) return false;
    }
    return s === this.root;
  }

  /** A new attached node `name` under `parent`, in the index of children, with no lookups. */
  private newChild(parent: number, name: string, mode: number, ino: bigint, id: number): number {
    const n = this.n;
    const s = n.alloc();
    n.ids[s] = id;
    n.inos[s] = ino;
    n.types[s] = typeOf(mode);
    n.flags[s] = Flag.Attached;
    this.linkChild(s, parent, name);
    return s;
  }

  /** One more lookup of a node of the tree; one that was not live gets a free id and `attr`'s generation. */
  private count(s: number, attr: EntryAttr, id?: number): void {
    const n = this.n;
    if (n.lookups[s] === 0 && s !== this.root) {
      n.ids[s] = id ?? this.freeId(attr.ino);
      n.gens[s] = attr.gen ?? 0;
      n.inos[s] = attr.ino;
      this.byId.add(s);
      this.index(s);
    } else {
      this.pin(n.ids[s] as number, attr.ino);
    }
    n.lookups[s] = (n.lookups[s] as number) + 1;
    n.replied[s] = clockS();
    attr.gen = n.gens[s] as number;
  }

  /** The stable id of `ino` when no live node holds it, else a fresh ephemeral one. */
  private freeId(ino: bigint): number {
    const id = stableIdOf(ino);
    return id !== undefined && !this.has(id) ? id : this.nextEphemeral++;
  }

  /** Whether slot `s` is found through `byIno` (its id is not its inode number's stable id). */
  private indexed(s: number): boolean {
    return stableIdOf(this.n.inos[s] as bigint) !== this.n.ids[s];
  }

  private index(s: number): void {
    if (!this.indexed(s)) return;
    const ino = this.n.inos[s] as bigint;
    const id = this.n.ids[s] as number;
    const ids = this.byIno.get(ino);
    if (ids === undefined) this.byIno.set(ino, id);
    else if (typeof ids !== "number") ids.add(id);
    else if (ids !== id) this.byIno.set(ino, new Set([ids, id]));
  }

  private unindex(s: number): void {
    if (!this.indexed(s)) return;
    const ino = this.n.inos[s] as bigint;
    const id = this.n.ids[s] as number;
    const ids = this.byIno.get(ino);
    if (ids === id) this.byIno.delete(ino);
    else if (typeof ids === "object" && ids.delete(id) && ids.size === 1) {
      for (const last of ids) this.byIno.set(ino, last);
    }
  }

  /** Puts slot `s` under `parent` as `name`, in the index of children (it must not be in it). */
  private linkChild(s: number, parent: number, name: string): void {
    const n = this.n;
    const before = n.parents[s] as number;
    if (before !== parent) {
      if (before !== NONE) n.refs[before] = (n.refs[before] as number) - 1;
      n.refs[parent] = (n.refs[parent] as number) + 1;
      n.parents[s] = parent;
    }
    n.names[s] = name;
    n.hashes[s] = childHash(parent, name);
    this.children.add(s);
    n.flags[s] = (n.flags[s] as number) | Flag.Linked;
    n.kids[parent] = (n.kids[parent] as number) + 1;
  }

  /** Takes slot `s` out of its parent's children (it keeps its parent and name, for a stale path). */
  private unlinkChild(s: number): void {
    const n = this.n;
    if (((n.flags[s] as number) & Flag.Linked) === 0) return;
    this.children.remove(s);
    n.flags[s] = (n.flags[s] as number) & ~Flag.Linked;
    const parent = n.parents[s] as number;
    n.kids[parent] = (n.kids[parent] as number) - 1;
  }

  private detach(s: number): void {
    const n = this.n;
    this.unlinkChild(s);
    n.flags[s] = (n.flags[s] as number) & ~Flag.Attached;
    this.remembered.delete(n.ids[s] as number);
    const parent = n.parents[s] as number;
    this.collect(s);
    if (parent !== NONE) this.prune(parent);
  }

  /**
   * Walking up from `start`: takes nodes with no lookups and no children out of the tree, and releases the
   * slot of each that is no one's parent any more.
   */
  private prune(start: number): void {
    const n = this.n;
    for (let s = start; s !== NONE && s !== this.root;) {
      if ((n.lookups[s] as number) > 0 || (n.kids[s] as number) > 0) return;
      this.unlinkChild(s);
      const parent = n.parents[s] as number;
      this.collect(s);
      s = parent;
    }
  }

  /** Releases slot `s` when nothing needs it: not live, not in the tree, no one's parent. */
  private collect(s: number): void {
    const n = this.n;
    if (s === this.root || n.lookups[s] !== 0 || n.refs[s] !== 0) return;
    if (((n.flags[s] as number) & Flag.Linked) !== 0) return;
    const parent = n.parents[s] as number;
    if (parent !== NONE) n.refs[parent] = (n.refs[parent] as number) - 1;
    n.release(s);
  }
}
