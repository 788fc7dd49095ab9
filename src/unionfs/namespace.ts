/**
 * Names in the union: creating, deleting and renaming them.
 *
 * Invariants:
 * - Deleting a name that a lower layer still provides leaves a whiteout. Crash ordering: a whiteout is
 *   written before the upper entry it replaces is removed (or both happen in one renameat2), and a new
 *   upper entry is in place before the whiteout it replaces is dropped (an entry beats a whiteout in the
 *   same layer), so a crash leaves the old or the new view, never one with a lower object resurrected.
 * - A directory created (or renamed) where a lower directory was deleted is opaque.
 * - A directory that lives (partly) in a lower layer is renamed by materializing it first; there is no
 *   EXDEV.
 */
import * as fs from "node:fs";
import type { WorkDir } from "../cow";
import { fsError } from "../errors";
import { relOf, splitPath, type WritableLayer } from "../layer";
import { clearWhiteouts, discard, isReservedName, isWhiteoutEntry } from "../whiteout";
import { ACL_DEFAULT, creationMode, defaultAclOf } from "./acl";
import { mergedListing } from "./listing";
import type { Resolved } from "./resolve";
import type { UnionState } from "./state";
import { RENAME_EXCHANGE, RENAME_NOREPLACE, type Attr, type Caller } from "./types";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFCHR = 0o020000;
const S_ISGID = 0o2000;
const { O_WRONLY, O_EXCL } = fs.constants;

export class Namespace {
  constructor(private readonly s: UnionState) {}

  // ---- creating names ------------------------------------------------------------------------------

  /**
   * Checks that `path` can be created and copies its parent up. `absent`: the caller has just resolved
   * `path` and found nothing there (create), so it is not looked up again.
   */
  prepareCreate(path: string, absent = false): void {
    this.s.writable();
    const [dir, name] = splitPath(path);
    if (isReservedName(name)) throw fsError("EPERM", `names starting with .wh. are reserved: ${path}`);
    if (!this.s.lookup.dirLayersOf(dir)) throw fsError("ENOENT", dir);
    if (!absent && this.s.lookup.resolve(path)) throw fsError("EEXIST", path);
    this.s.copyUp(dir);
  }

  /**
   * Creates a new top-layer entry at `path` with `build(layer, rel)`, which makes it at `rel` of `layer`.
   * Over an overlay-format whiteout the entry is built in the work dir and swapped in with
   * RENAME_EXCHANGE, so the name never shows the lower object in between; with `viaWork` it is built
   * there and renamed into place (complete before it is visible). An aufs whiteout for the name is
   * dropped last (an entry beats a whiteout meanwhile).
   */
  createAt(path: string, build: (layer: WritableLayer, rel: string) => void, viaWork = false): void {
    const upper = this.s.writable();
    const work = this.s.work as WorkDir;
    const [dir, name] = splitPath(path);
    const rel = relOf(path);
    const st = upper.tryLstat(rel);
    const overWhiteout = st !== undefined && isWhiteoutEntry(upper, relOf(dir), rel, st);
    if (overWhiteout || viaWork) {
      const stage = this.aclStage(dir);
      const tmp = stage === undefined ? work.temp() : `${stage}/n`;
      try {
        build(work.layer, tmp);
        upper.moveFrom(work.layer, tmp, rel, overWhiteout ? RENAME_EXCHANGE : 0);
      } finally {
        work.layer.removeTree(stage ?? tmp);
      }
    } else {
      build(upper, rel);
    }
    clearWhiteouts(upper, relOf(dir), name);
  }

  /**
   * A work-dir directory carrying the default ACL of the union directory `dir` (undefined when it has
   * none), so that an object built in it inherits exactly what it would have inherited in `dir`.
   */
  private aclStage(dir: string): string | undefined {
    const acl = defaultAclOf(this.s.writable(), relOf(dir));
    if (acl === undefined) return undefined;
    const work = this.s.work as WorkDir;
    const stage = work.temp();
    work.layer.mkdir(stage, 0o700);
    work.layer.setxattr(stage, ACL_DEFAULT, acl, 0);
    return stage;
  }

  /** The mode to create `path` with (after prepareCreate: its parent is in the top layer). */
  newMode(path: string, mode: number, caller: Caller): number {
    if (caller.umask === undefined) return mode;
    const acl = defaultAclOf(this.s.writable(), relOf(splitPath(path)[0]));
    return creationMode(mode, caller.umask, acl !== undefined);
  }

  /**
   * New objects belong to the caller; the group comes from a set-group-ID parent directory. The
   * writable branch's filesystem already gave the object that group (it applies set-group-ID
   * inheritance to the daemon's own creations), so when the daemon (root:root) creates for a caller
   * that is root:root on disk, there is nothing to look at or change.
   */
  own(layer: WritableLayer, rel: string, path: string, caller: Caller): void {
    const uid = this.s.attrs.uids.toDisk(caller.uid);
    const callerGid = this.s.attrs.gids.toDisk(caller.gid);
    if (uid === 0 && callerGid === 0 && process.geteuid?.() === 0 && process.getegid?.() === 0) return;
    const parent = this.s.writable().lstat(relOf(splitPath(path)[0]));
    const gid = Number(parent.mode) & S_ISGID ? Number(parent.gid) : callerGid;
    if (uid !== 0 || gid !== 0) layer.lchown(rel, uid, gid);
  }

  /** A directory appearing where a lower directory was deleted must hide that directory's contents. */
  private needsOpaque(path: string): boolean {
    const b = this.s.below(path);
    return b !== undefined && b.dirLayers !== undefined;
  }

  mknod(path: string, mode: number, rdev: number, caller: Caller): Attr {
    this.prepareCreate(path);
    const type = mode & S_IFMT;
    if (type === S_IFDIR) throw fsError("EINVAL", "mknod of a directory");
    if (type === S_IFCHR && rdev === 0) throw fsError("EPERM", "a 0/0 character device is a whiteout");
    mode = this.newMode(path, mode, caller);
    this.createAt(path, (layer, rel) => {
      if (type === S_IFREG || type === 0) layer.create(rel, O_WRONLY | O_EXCL, mode & 0o7777).close();
      else layer.mknod(rel, mode, rdev);
      this.own(layer, rel, path, caller);
    });
    return this.attrOf(path);
  }

  mkdir(path: string, mode: number, caller: Caller): Attr {
    this.prepareCreate(path);
    mode = this.newMode(path, mode, caller);
    const opaque = this.needsOpaque(path);
    this.createAt(
      path,
      (layer, rel) => {
        layer.mkdir(rel, mode & 0o7777);
        if (opaque) this.s.wh.makeOpaque(layer, rel);
        this.own(layer, rel, path, caller);
      },
      opaque,
    );
    this.s.lookup.invalidate();
    return this.attrOf(path);
  }

  symlink(target: string, path: string, caller: Caller): Attr {
    this.prepareCreate(path);
    this.createAt(path, (layer, rel) => {
      layer.symlink(target, rel);
      this.own(layer, rel, path, caller);
    });
    return this.attrOf(path);
  }

  link(existing: string, newPath: string): Attr {
    const src = this.s.need(existing);
    if (src.dirLayers) throw fsError("EPERM", `cannot hard-link a directory: ${existing}`);
    this.prepareCreate(newPath);
    this.s.copyUp(existing, src);
    const upper = this.s.writable();
    this.createAt(newPath, (layer, rel) => layer.linkFrom(upper, relOf(existing), rel));
    return this.attrOf(newPath);
  }

  // ---- deleting names ------------------------------------------------------------------------------

  unlink(path: string): void {
    const upper = this.s.writable();
    const r = this.s.need(path);
    if (r.dirLayers) throw fsError("EISDIR", path);
    this.removeName(path, r.layer === upper.index, false);
  }

  rmdir(path: string): void {
    const upper = this.s.writable();
    if (path === "/") throw fsError("EBUSY", "cannot remove the root");
    const r = this.s.need(path);
    if (!r.dirLayers) throw fsError("ENOTDIR", path);
    if (mergedListing(this.s.layers, r.dirLayers, relOf(path)).length > 0) throw fsError("ENOTEMPTY", path);
    this.removeName(path, r.dirLayers[0] === upper.index, true);
    this.s.lookup.invalidate();
  }

  /** Removes the top-layer entry (if `upperHas`) and whites the name out when a lower layer has it. */
  private removeName(path: string, upperHas: boolean, isDir: boolean): void {
    const upper = this.s.writable();
    const [dir, name] = splitPath(path);
    if (this.s.below(path)) {
      this.s.copyUp(dir);
      this.s.wh.remove(upper, relOf(dir), name, upperHas, this.s.work as WorkDir);
    } else if (upperHas) {
      if (isDir) discard(upper, relOf(path), this.s.work as WorkDir);
      else upper.unlink(relOf(path));
    }
  }

  rename(from: string, to: string, flags: number): void {
    const exchange = (flags & RENAME_EXCHANGE) !== 0;
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) || (exchange && flags & RENAME_NOREPLACE)) {
      throw fsError("EINVAL", `rename flags ${flags}`);
    }
    this.s.writable();
    const src = this.s.need(from);
    const [toDir, toName] = splitPath(to);
    if (isReservedName(toName)) throw fsError("EPERM", `names starting with .wh. are reserved: ${to}`);
    if (!this.s.lookup.dirLayersOf(toDir)) throw fsError("ENOENT", toDir);
    const dst = this.s.lookup.resolve(to);
    if (exchange) return this.exchange(from, src, to, dst);
    if (dst && flags & RENAME_NOREPLACE) throw fsError("EEXIST", to);
    if (from === to) return;
    this.checkRenameTypes(from, src, to, dst);
    this.s.copyUp(from, src, { whole: true });
    this.s.copyUp(toDir);
    this.renameInTop(from, to, src.dirLayers !== undefined, dst);
    if (src.dirLayers || dst?.dirLayers) this.s.lookup.invalidate();
  }

  /** The rename itself, once `from` lives entirely in the top layer and `to`'s parent exists there. */
  private renameInTop(from: string, to: string, isDir: boolean, dst: Resolved | undefined): void {
    const upper = this.s.writable();
    const [fromDir, fromName] = splitPath(from);
    const [toDir, toName] = splitPath(to);
    const [fromRel, toRel] = [relOf(from), relOf(to)];
    if (dst?.dirLayers?.[0] === upper.index) this.clearMarkers(toRel);
    if (isDir && this.needsOpaque(to)) this.s.wh.makeOpaque(upper, fromRel);
    const needWhiteout = this.s.below(from) !== undefined;
    const toSt = upper.tryLstat(toRel);
    if (isDir && toSt && isWhiteoutEntry(upper, relOf(toDir), toRel, toSt)) {
      // A directory cannot replace a whiteout entry by rename: swap them; the whiteout lands on `from`.
      upper.rename(fromRel, toRel, RENAME_EXCHANGE);
      if (!needWhiteout) upper.unlink(fromRel);
    } else if (needWhiteout) {
      this.s.wh.renameWithWhiteout(upper, relOf(fromDir), fromName, toRel);
    } else {
      upper.rename(fromRel, toRel);
    }
    clearWhiteouts(upper, relOf(toDir), toName);
  }

  /** RENAME_EXCHANGE: both names move to the top layer first, then swap in one renameat2. */
  private exchange(from: string, src: Resolved, to: string, dst: Resolved | undefined): void {
    if (!dst) throw fsError("ENOENT", to);
    if (from === to) return;
    const upper = this.s.writable();
    this.s.copyUp(from, src, { whole: true });
    this.s.copyUp(to, this.s.need(to), { whole: true });
    // A directory arriving where a lower directory lies below must not merge with it.
    if (src.dirLayers && this.needsOpaque(to)) this.s.wh.makeOpaque(upper, relOf(from));
    if (dst.dirLayers && this.needsOpaque(from)) this.s.wh.makeOpaque(upper, relOf(to));
    upper.rename(relOf(from), relOf(to), RENAME_EXCHANGE);
    this.s.lookup.invalidate();
  }

  /** Puts the object at `path` entirely in the top layer: copy-up for files, materialize for dirs. */
  private checkRenameTypes(from: string, src: Resolved, to: string, dst: Resolved | undefined): void {
    if (!dst) return;
    if (src.dirLayers && !dst.dirLayers) throw fsError("ENOTDIR", to);
    if (!src.dirLayers && dst.dirLayers) throw fsError("EISDIR", to);
    if (dst.dirLayers && mergedListing(this.s.layers, dst.dirLayers, relOf(to)).length > 0) {
      throw fsError("ENOTEMPTY", to);
    }
    if (to.startsWith(`${from}/`)) throw fsError("EINVAL", `cannot move ${from} into itself`);
  }

  /** Empties an upper directory of whiteouts and markers (its merged view is already empty). */
  private clearMarkers(rel: string): void {
    const upper = this.s.writable();
    for (const e of upper.readdir(rel)) {
      const entryRel = `${rel}/${e.name}`;
      if (isReservedName(e.name) || isWhiteoutEntry(upper, rel, entryRel, upper.lstat(entryRel))) {
        upper.removeTree(entryRel);
      }
    }
  }

  private attrOf(path: string): Attr {
    return this.s.attrs.attrOf(path, this.s.need(path));
  }
}
