/**
 * The layer interface: what the union, copy-up, listings and the image tools may ask of a layer.
 *
 * A layer is a tree of objects addressed by layer-relative byte-string paths: "" for its root, "/a/b"
 * below it (one JS char per byte). Everything that is read goes through `Layer`; changes go through
 * `WritableLayer`, which only the union's writable branch (and its work dir) implement. How a layer keeps
 * its objects (a directory, an archive) is its own business: nothing outside src/layer/ builds a path
 * into a layer's storage.
 *
 * Invariants:
 * - Errors are errno errors (`code` ENOENT, ENOTDIR, EROFS, …), as the syscall would give them;
 *   `tryLstat` is the one call that turns "not in this layer" (ENOENT/ENOTDIR) into `undefined`.
 * - A layer knows nothing of whiteouts or of other layers: it shows its markers as the objects they are.
 * - Reading never changes an access time, except a caller's read (`openAccess`, `readdir(rel, true)`,
 *   `readlink`), which changes it as the layer's atime policy says (atime.ts).
 * - A file opened for reading is an object (`LayerFile`): read at a position, fstat, close. It carries a
 *   real descriptor (`fd`) only where the layer has one; the kernel (FUSE passthrough) and copy_file_range
 *   need it, everything else works without.
 * - A read-only layer never changes while it is mounted, and a writable one changes only through its own
 *   methods (the union's documented assumption, as kernel overlayfs and fuse-overlayfs make it): a
 *   writable directory layer answers a name it found missing from memory (absent.ts).
 */
import type { Stat } from "../sys/stat";

export type { Stat };

/** One raw directory entry of one layer. `type` is S_IFMT bits, 0 when the layer did not say. */
export interface RawEntry {
  name: string;
  type: number;
}

/** What statfs reports of the storage a layer lives on. */
export interface LayerStatFs {
  bsize: number;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
}

/** A layer's file, open for reading. */
export interface LayerFile {
  /** A real descriptor of the file, where one exists (FUSE passthrough, copy_file_range). */
  readonly fd?: number;
  /** Up to `length` bytes at `position`: a short (or empty) Buffer at end of file. */
  read(length: number, position: bigint): Buffer;
  /** Reads up to `buf.length` bytes at `position` into `buf`; the count read (0 at end of file). */
  readInto(buf: Buffer, position: bigint): number;
  /** The open file's attributes (as lstat gives them; it may have been renamed or unlinked since). */
  fstat(): Stat;
  close(): void;
}

/** A writable layer's file: always a real descriptor; changes go to the object itself. */
export interface WritableFile extends LayerFile {
  readonly fd: number;
  /** Writes `data` at `position` (ignored for O_APPEND); returns bytes written. */
  write(data: Buffer, position: bigint): number;
  truncate(size: bigint): void;
  sync(datasync: boolean): void;
  chown(uid: number, gid: number): void;
  chmod(mode: number): void;
  utimens(atime: bigint | "now" | undefined, mtime: bigint | "now" | undefined): void;
  fallocate(mode: number, offset: bigint, length: bigint): void;
}

export interface Layer {
  /** Position in the union, top first (-1 for a layer that is not a branch: a work dir, an image tool's). */
  readonly index: number;
  /** The layer's source as given (a byte-string path), for messages. */
  readonly origin: string;
  readonly writable: boolean;
  /** Whether whiteouts in this layer hide lower layers (aufs `rr` does not look for them). */
  readonly honoursWhiteouts: boolean;
  /** Device of the layer's objects (what lstat gives as `dev`), for inode-number uniqueness. */
  readonly dev: bigint;
  /**
   * A name of the layer's tree that is the same for every layer opened on it in this process, so that
   * unions sharing a read-only layer can share what they cache of it (unionfs/shared-listings.ts).
   * Undefined when the layer cannot promise that (a tar layer numbers its own inodes).
   */
  readonly identity?: string | undefined;

  lstat(rel: string): Stat;
  tryLstat(rel: string): Stat | undefined;
  /**
   * The entries of directory `rel` (without "." and ".."). With `access` the listing is a caller's
   * (READDIR) and changes the directory's access time as the atime policy says; otherwise never.
   */
  readdir(rel: string, access?: boolean): RawEntry[];
  /**
   * A hint: the subdirectories `dirs` of directory `rel` are about to be listed, and each of their
   * entries lstat'ed (and listed, if a directory). The layer may warm its storage for that in the
   * background (prefetch.ts); it never changes anything and never throws. Layers that keep their tree
   * in memory have nothing to do. A layer may hold small hints back until `flushPrefetch` (index.ts),
   * which the asker calls once it has asked every layer; while `prefetchWanted` is false, asking is
   * pointless.
   */
  prefetch?(rel: string, dirs: readonly string[]): void;
  /** A caller's readlink: it counts as reading the symlink (see `openAccess`). */
  readlink(rel: string): string;
  /** The value of attribute `name`; undefined when the object has no such attribute (ENODATA). */
  getxattr(rel: string, name: string): Buffer | undefined;
  /** `getxattr`, also undefined when the layer has no xattrs (EOPNOTSUPP). */
  tryGetxattr(rel: string, name: string): Buffer | undefined;
  listxattr(rel: string): string[];
  /** Opens regular file `rel` for the union's own reading (copy-up): no access time ever changes. */
  open(rel: string): LayerFile;
  /**
   * Opens `rel` for a caller of the union with open(2) `flags`: reading it (also by the kernel: FUSE
   * passthrough, exec) changes its access time as the atime policy says. A read-only layer refuses
   * flags that could change the file (EROFS).
   */
  openAccess(rel: string, flags: number): LayerFile;
  statfs(): LayerStatFs;
  /** Releases what the layer holds open. */
  close(): void;
}

/**
 * A writable directory beside a writable layer, on its filesystem (the work dir): objects are built there
 * before one rename publishes them, and removed entries are moved there to be deleted.
 */
export interface Scratch {
  readonly layer: WritableLayer;
  /** A fresh path in `layer`; nothing is created. */
  temp(): string;
}

/**
 * A layer the union writes to (its writable branch), or a scratch directory beside it (the work dir).
 * Cross-layer moves and links are for layers on one filesystem (EXDEV otherwise).
 */
export interface WritableLayer extends Layer {
  readonly writable: true;
  openAccess(rel: string, flags: number): WritableFile;
  /** Opens regular file `rel`, creating it (O_CREAT added to `flags`) with `mode` when missing. */
  create(rel: string, flags: number, mode: number): WritableFile;
  /** `file`, just created at `rel` by `create`, as `openAccess(rel, flags)` would open it (else closed). */
  forAccess(rel: string, file: WritableFile, flags: number): WritableFile;

  mkdir(rel: string, mode: number): void;
  symlink(target: string, rel: string): void;
  mknod(rel: string, mode: number, rdev: number): void;
  link(existingRel: string, newRel: string): void;
  unlink(rel: string): void;
  rmdir(rel: string): void;
  /** renameat2 with `flags` (RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT). */
  rename(fromRel: string, toRel: string, flags?: number): void;
  lchown(rel: string, uid: number, gid: number): void;
  chmod(rel: string, mode: number): void;
  truncate(rel: string, size: bigint): void;
  utimens(rel: string, atime: bigint | "now" | undefined, mtime: bigint | "now" | undefined): void;
  setxattr(rel: string, name: string, value: Buffer, flags: number): void;
  removexattr(rel: string, name: string): void;
  /** Removes `rel` and everything below it; nothing when it does not exist. */
  removeTree(rel: string): void;

  /** Moves `fromRel` of writable layer `from` to `toRel` in this one (renameat2 `flags`). */
  moveFrom(from: WritableLayer, fromRel: string, toRel: string, flags?: number): void;
  /** Makes `newRel` here another name of `existingRel` of writable layer `from`. */
  linkFrom(from: WritableLayer, existingRel: string, newRel: string): void;
}
