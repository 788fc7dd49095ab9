/**
 * The passthrough mode table against fake ioctls: one backing id per node, the kernel's one-mode-per-node
 * rule, conflicts after a copy-up, and falling back when the kernel refuses.
 */
import { strict as assert } from "node:assert";
import { fsError } from "../../../src/errors";
import { CACHED, CONFLICT, Passthrough, type BackingIoctls } from "../../../src/fuse/kernel/passthrough";
import { FOPEN_PASSTHROUGH } from "../../../src/fuse/kernel/protocol";
import type { BackingFile } from "../../../src/unionfs/types";

class FakeIoctls implements BackingIoctls {
  opened: number[] = [];
  closed: number[] = [];
  refuse: string | undefined;
  private next = 1;
  open(fd: number): number {
    if (this.refuse !== undefined) throw fsError(this.refuse, "refused");
    this.opened.push(fd);
    return this.next++;
  }
  close(id: number): void {
    this.closed.push(id);
  }
}

function file(ino: bigint, preferred = true): BackingFile {
  return { fd: 100 + Number(ino), dev: 1n, ino, preferred };
}

describe("fuse/kernel/passthrough", () => {
  let io: FakeIoctls;
  let logs: string[];
  let p: Passthrough;
  beforeEach(() => {
    io = new FakeIoctls();
    logs = [];
    p = new Passthrough(io, true, (l) => logs.push(l));
  });

  it("registers one backing id per node and drops it with the node's last handle", () => {
    const a = p.open(2, 10, file(5n));
    const b = p.open(2, 11, file(5n));
    assert.equal(a.flags & FOPEN_PASSTHROUGH, FOPEN_PASSTHROUGH);
    assert.equal(b.backingId, a.backingId);
    assert.deepEqual(io.opened, [105]);
    p.release(10);
    assert.deepEqual(io.closed, []);
    p.release(11);
    assert.deepEqual(io.closed, [a.backingId]);
  });

  it("serves a node cached while it has cached opens, and files the core does not offer", () => {
    assert.equal(p.open(2, 10, undefined), CACHED);
    assert.equal(p.open(2, 11, file(5n)), CACHED);
    assert.deepEqual(io.opened, []);
    p.release(10);
    p.release(11);
    assert.equal(p.open(2, 12, file(5n)).flags & FOPEN_PASSTHROUGH, FOPEN_PASSTHROUGH);
  });

  it("passes a not-preferred file through only to join a node already in passthrough mode", () => {
    assert.equal(p.open(3, 10, file(6n, false)), CACHED);
    p.release(10);
    p.open(3, 11, file(6n));
    assert.equal(p.open(3, 12, file(6n, false)).flags & FOPEN_PASSTHROUGH, FOPEN_PASSTHROUGH);
    assert.equal(p.open(3, 13, undefined), CONFLICT);
  });

  it("reports a conflict when a node in passthrough mode is opened on another file (copy-up)", () => {
    p.open(4, 10, file(7n));
    assert.equal(p.open(4, 11, file(8n)), CONFLICT);
    p.release(11); // never recorded: harmless
    p.release(10);
    assert.equal(io.closed.length, 1);
  });

  it("turns itself off on EPERM and keeps going cached on other refusals", () => {
    io.refuse = "ELOOP";
    assert.equal(p.open(5, 10, file(9n)), CACHED);
    assert.equal(p.active, true);
    io.refuse = "EPERM";
    assert.equal(p.open(6, 11, file(10n)), CACHED);
    assert.equal(p.active, false);
    assert.equal(logs.length, 2);
  });
});
