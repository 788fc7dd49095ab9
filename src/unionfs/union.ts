/**
 * The union: layers stacked top first, served as one tree through syscall-shaped methods (`UnionOps`).
 * It composes one part per concern over the shared state (state.ts): objects by name (objects.ts), open
 * files (files.ts), names (namespace.ts), directory handles (dirs.ts), extended attributes (xattrs.ts),
 * with copy-up (src/cow) below them all.
 *
 * Invariant: every method here only hands the call to the part that serves it.
 */
import type { WorkDir } from "../cow";
import type { Layer } from "../layer";
import type { WhiteoutWriter } from "../whiteout";
import { statFsOf } from "./attr";
import { Dirs } from "./dirs";
import { Files } from "./files";
import { Namespace } from "./namespace";
import { Objects } from "./objects";
import { UnionState, type UnionOptions } from "./state";
import { Xattrs } from "./xattrs";
import type { AccessTouch } from "./atime";
import type {
  Attr,
  BackgroundCopies,
  BackingFile,
  Caller,
  DirEntry,
  SetAttrRequest,
  StatFs,
  UnionOps,
} from "./types";

export { isPrivateXattr, type UnionOptions } from "./state";

export class Union implements UnionOps {
  private readonly s: UnionState;
  private readonly objects: Objects;
  private readonly files: Files;
  private readonly names: Namespace;
  private readonly dirs: Dirs;
  private readonly xattrs: Xattrs;

  constructor(layers: readonly Layer[], work: WorkDir | undefined, wh?: WhiteoutWriter, opts?: UnionOptions) {
    this.s = new UnionState(layers, work, wh, opts);
    this.names = new Namespace(this.s);
    this.files = new Files(this.s, this.names);
    this.objects = new Objects(this.s, this.files);
    this.dirs = new Dirs(this.s);
    this.xattrs = new Xattrs(this.s);
  }

  get layers(): readonly Layer[] {
    return this.s.layers;
  }

  // ---- objects -------------------------------------------------------------------------------------

  getattr(path: string, fh?: number): Attr {
    return this.objects.getattr(path, fh);
  }

  lookup(path: string): Attr | undefined {
    return this.objects.lookup(path);
  }

  setattr(path: string, req: SetAttrRequest, fh?: number): Attr {
    return this.objects.setattr(path, req, fh);
  }

  readlink(path: string): string {
    return this.objects.readlink(path);
  }

  access(path: string, mask: number): void {
    this.objects.access(path, mask);
  }

  statfs(_path: string): StatFs {
    return statFsOf(this.s.layer(0));
  }

  // ---- names ---------------------------------------------------------------------------------------

  mknod(path: string, mode: number, rdev: number, caller: Caller): Attr {
    return this.names.mknod(path, mode, rdev, caller);
  }

  mkdir(path: string, mode: number, caller: Caller): Attr {
    return this.names.mkdir(path, mode, caller);
  }

  symlink(target: string, path: string, caller: Caller): Attr {
    return this.names.symlink(target, path, caller);
  }

  link(existing: string, newPath: string): Attr {
    return this.names.link(existing, newPath);
  }

  unlink(path: string): void {
    this.names.unlink(path);
  }

  rmdir(path: string): void {
    this.names.rmdir(path);
  }

  rename(from: string, to: string, flags: number): void {
    this.names.rename(from, to, flags);
  }

  // ---- open files ----------------------------------------------------------------------------------

  open(path: string, flags: number): number {
    return this.files.open(path, flags);
  }

  create(path: string, flags: number, mode: number, caller: Caller): { fh: number; attr: Attr } {
    return this.files.create(path, flags, mode, caller);
  }

  read(fh: number, length: number, position: bigint): Buffer {
    return this.files.read(fh, length, position);
  }

  readInto(fh: number, buf: Buffer, position: bigint): number {
    return this.files.readInto(fh, buf, position);
  }

  readFd(fh: number): number | undefined {
    return this.files.readFd(fh);
  }

  copyUpEpoch(): number {
    return this.s.epoch;
  }

  write(fh: number, data: Buffer, position: bigint): number {
    return this.files.write(fh, data, position);
  }

  flush(fh: number): void {
    this.files.flush(fh);
  }

  fsync(fh: number, datasync: boolean): void {
    this.files.fsync(fh, datasync);
  }

  syncFd(fh: number): number | undefined {
    return this.files.syncFd(fh);
  }

  release(fh: number): void {
    this.files.release(fh);
  }

  fallocate(fh: number, mode: number, offset: bigint, length: bigint): void {
    this.files.fallocate(fh, mode, offset, length);
  }

  lseek(fh: number, offset: bigint, whence: number): bigint {
    return this.files.lseek(fh, offset, whence);
  }

  passthrough(fh: number): BackingFile | undefined {
    return this.files.passthrough(fh);
  }

  accessTouch(fh: number): AccessTouch {
    return this.files.accessTouch(fh);
  }

  killSuidgid(fh: number): boolean {
    return this.files.killSuidgid(fh);
  }

  // ---- directories ---------------------------------------------------------------------------------

  opendir(path: string, opts?: { internal?: boolean }): number {
    return this.dirs.opendir(path, opts);
  }

  readdir(dh: number): readonly DirEntry[] {
    return this.dirs.readdir(dh);
  }

  releasedir(dh: number): void {
    this.dirs.releasedir(dh);
  }

  listingsTouchEveryTime(): boolean {
    return this.dirs.listingsTouchEveryTime();
  }

  prefetchEntries(path: string): void {
    this.dirs.prefetchEntries(path);
  }

  // ---- extended attributes -------------------------------------------------------------------------

  setxattr(path: string, name: string, value: Buffer, flags: number, opts?: { killSgid?: boolean }): void {
    this.xattrs.setxattr(path, name, value, flags, opts);
  }

  getxattr(path: string, name: string): Buffer | undefined {
    return this.xattrs.getxattr(path, name);
  }

  listxattr(path: string): string[] {
    return this.xattrs.listxattr(path);
  }

  removexattr(path: string, name: string): void {
    this.xattrs.removexattr(path, name);
  }

  // ---- copy-up, as the transport sees it -----------------------------------------------------------

  takeChanged(): string[] | undefined {
    return this.s.cow?.takeChanged();
  }

  get background(): BackgroundCopies | undefined {
    return this.s.cow;
  }

  destroy(): void {
    this.s.close();
  }
}
