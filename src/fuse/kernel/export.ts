/**
 * Lookups of "." and ".." (FUSE_EXPORT_SUPPORT): how the kernel turns a file handle (node id, generation)
 * back into an inode once its cache dropped it (open_by_handle_at, NFS re-export, after a remount), and
 * how it reconnects a directory found that way to the root.
 *
 * Invariants:
 * - A lookup of "." in node N answers node N or fails: the kernel refuses (EIO) an entry for another id.
 *   Failures are ESTALE (nothing of that id can be found) or the error of the core call.
 * - N's object is found from where N was last seen (its own and its ancestors' remembered whereabouts,
 *   inodes.ts), else by walking the union breadth first, at most MAX_WALK entries, recording what the walk
 *   sees for later lookups. Whatever is found is accepted only if the core reports, at its path, the
 *   inode number N stands for (nodeids.ts) or, for an ephemeral id, the number remembered with it.
 * - The generation of the reply is the object's: the kernel itself compares it with the handle's and
 *   says ESTALE when they differ (a number reused for a new object).
 * - A lookup of ".." in node N answers N's parent in the tree (the root's parent is the root).
 * - Only these lookups walk; no other request pays anything for file handles.
 */
import { codeOf, fsError } from "../../errors";
import type { Attr } from "../../unionfs/types";
import { entryOut } from "./codec";
import { joinPath, withIno, type NodeInfo, type Route } from "./inodes";
import { inoOfStableId, stableIdOf } from "./nodeids";
import { S_IFDIR, S_IFMT } from "./protocol";
import type { Reply, Session } from "./session";

/** Most entries one search walks (15–20 µs each just after a mount here: 4–5 s). */
export const MAX_WALK = 250_000;

/** The entry of `node`, with the number it is pinned to while live. */
function reply(s: Session, node: NodeInfo, attr: Attr): Reply {
  const id = node.id;
  return {
    parts: [entryOut(id, withIno(attr, node.ino), s.entryTimeout, s.attrTimeoutFor(id))],
    undo: () => s.table.forget(id, 1),
  };
}

/** Attributes at `path`, or undefined when nothing (or something unreadable) is there. */
function attrAt(s: Session, path: string): Attr | undefined {
  try {
    return s.ops.getattr(path);
  } catch (err) {
    if (codeOf(err) !== undefined) return undefined;
    throw err;
  }
}

/** LOOKUP of ".." in `nodeid`. */
export function lookupDotdot(s: Session, nodeid: number): Reply {
  const { node, attr } = s.table.lookupParent(nodeid, (p) => s.ops.getattr(p));
  return reply(s, node, attr);
}

/** LOOKUP of "." in `nodeid`. */
export function lookupDot(s: Session, nodeid: number): Reply {
  if (s.table.has(nodeid)) {
    const { node, attr } = s.table.lookupSelf(nodeid, (p) => s.ops.getattr(p));
    return reply(s, node, attr);
  }
  const ino = inoOfStableId(nodeid) ?? s.table.remembered.get(nodeid)?.ino;
  if (ino === undefined) throw fsError("ESTALE", `node id ${nodeid} was never handed out here`);
  const found = find(s, nodeid, ino) ?? (walk(s, ino) ? find(s, nodeid, ino) : undefined);
  if (found === undefined) throw fsError("ESTALE", `nothing has inode number ${ino} any more`);
  const node = s.table.place(found.route, nodeid, found.attr);
  if (node === undefined) throw fsError("ESTALE", `inode number ${ino} is known under another node id`);
  return reply(s, node, found.attr);
}

/** The object of `nodeid` where it was last seen, if it still is there. */
function find(s: Session, nodeid: number, ino: bigint): { route: Route; attr: Attr } | undefined {
  const route = s.table.routeTo(nodeid);
  if (route === undefined || route.steps.length === 0) return undefined;
  const attr = attrAt(s, s.table.routePath(route));
  return attr !== undefined && attr.ino === ino ? { route, attr } : undefined;
}

interface Queued {
  path: string;
  /** The directory's stable id (1 for the root); undefined when it has none. */
  id: number | undefined;
}

/**
 * Walks the union breadth first until an object with inode number `ino` shows, remembering where every
 * object seen is (for this search's `find` and later ones). True when it showed.
 */
function walk(s: Session, ino: bigint): boolean {
  const queue: Queued[] = [{ path: "/", id: 1 }];
  let budget = MAX_WALK;
  for (let at = 0; at < queue.length && budget > 0; at++) {
    const dir = queue[at] as Queued;
    queue[at] = { path: "", id: undefined }; // let visited paths go
    for (const name of listing(s, dir.path)) {
      if (--budget < 0) break;
      const path = joinPath(dir.path, name);
      const attr = attrAt(s, path);
      if (attr === undefined) continue;
      const id = stableIdOf(attr.ino);
      if (id !== undefined && dir.id !== undefined) {
        s.table.remembered.set(id, { parent: dir.id, name, ino: attr.ino });
      }
      if (attr.ino === ino) return true;
      if ((attr.mode & S_IFMT) === S_IFDIR) queue.push({ path, id });
    }
  }
  return false;
}

/** The names in directory `path` (none when it cannot be listed). */
function listing(s: Session, path: string): string[] {
  let dh: number;
  try {
    dh = s.ops.opendir(path, { internal: true }); // the daemon's own walk: no access time changes
  } catch (err) {
    if (codeOf(err) !== undefined) return [];
    throw err;
  }
  try {
    return s.ops.readdir(dh).map((e) => e.name);
  } finally {
    s.ops.releasedir(dh);
  }
}
