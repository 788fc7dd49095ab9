/**
 * Extended attributes of the union's objects, POSIX ACLs included (acl.ts).
 *
 * Invariants: the union's own bookkeeping attributes (`isPrivateXattr`) are never shown, set or removed;
 * setting or removing one copies the object up first (removing one it does not have does not);
 * `noxattrs` turns everything but ACL reads into EOPNOTSUPP, and an ACL read into ENODATA.
 */
import { fsError } from "../errors";
import { relOf } from "../layer";
import { isAclXattr } from "./acl";
import { isPrivateXattr, type UnionState } from "./state";

const S_ISGID = 0o2000;

export class Xattrs {
  constructor(private readonly s: UnionState) {}

  setxattr(path: string, name: string, value: Buffer, flags: number, opts?: { killSgid?: boolean }): void {
    this.allowed();
    if (isPrivateXattr(name)) throw fsError("EPERM", `reserved attribute ${name}`);
    const upper = this.s.writable();
    const rel = this.copyUp(path);
    upper.setxattr(rel, name, value, flags);
    if (opts?.killSgid !== true) return;
    const mode = Number(upper.lstat(rel).mode);
    if (mode & S_ISGID) upper.chmod(rel, mode & ~S_ISGID & 0o7777);
  }

  /** The value of `name`; undefined (ENODATA) when the object has no such attribute. */
  getxattr(path: string, name: string): Buffer | undefined {
    if (isAclXattr(name)) return this.getAcl(path, name);
    this.allowed();
    const r = this.s.need(path);
    if (isPrivateXattr(name)) return undefined;
    return this.s.layer(r.layer).getxattr(relOf(path), name);
  }

  /** An ACL, else undefined, also where there can be none (noxattrs, a layer without ACL support). */
  private getAcl(path: string, name: string): Buffer | undefined {
    const r = this.s.need(path);
    return this.s.opts.noXattrs ? undefined : this.s.layer(r.layer).tryGetxattr(relOf(path), name);
  }

  listxattr(path: string): string[] {
    this.allowed();
    const r = this.s.need(path);
    return this.s
      .layer(r.layer)
      .listxattr(relOf(path))
      .filter((n) => !isPrivateXattr(n));
  }

  removexattr(path: string, name: string): void {
    this.allowed();
    if (isPrivateXattr(name)) throw fsError("ENODATA", name);
    const r = this.s.need(path);
    // Removing an attribute the object does not have must not copy it up.
    if (this.s.layer(r.layer).getxattr(relOf(path), name) === undefined) throw fsError("ENODATA", name);
    const upper = this.s.writable();
    upper.removexattr(this.copyUp(path), name);
  }

  /** Copies whatever `path` is up; returns its layer-relative path. */
  private copyUp(path: string): string {
    this.s.copyUp(path, this.s.need(path));
    return relOf(path);
  }

  private allowed(): void {
    if (this.s.opts.noXattrs) throw fsError("EOPNOTSUPP", "extended attributes are off (noxattrs)");
  }
}
