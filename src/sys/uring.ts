/**
 * A minimal io_uring over raw system calls (koffi; no liburing, nothing compiled): set up a ring, queue
 * submission entries, submit and wait, walk the completions. What FUSE over io_uring needs and no more.
 *
 * Invariants:
 * - One ring belongs to one thread: nothing here is safe to share. The kernel runs no submission thread
 *   (no SQPOLL), so the submission tail it reads is the one stored before `enter()`; completions are read
 *   with an acquire load of the tail and released with a store of the head (Atomics on the mapped rings).
 * - `sqe()` hands out a zeroed entry (its opcode, descriptor and tag set); entries queued are submitted by the next `enter()`. A full
 *   submission queue submits what it has first.
 * - The rings stay mapped, and the ring's fd open, until `close()`; nothing is used after it.
 * - Errors are errno errors (sysError); EINTR on enter is retried by the caller's loop (`enter` returns -1).
 */
import { constants } from "node:os";
import { koffi, libc, once } from "./native";
import { closeFd, sysError } from "./libc";

const SYS_IO_URING_SETUP = 425;
const SYS_IO_URING_ENTER = 426;

/** io_uring_params.flags: 128-byte submission entries (what URING_CMD of FUSE needs), own CQ size. */
export const SETUP_SQE128 = 1 << 10;
const SETUP_CQSIZE = 1 << 3;
const FEAT_SINGLE_MMAP = 1 << 0;
const ENTER_GETEVENTS = 1 << 0;
const ENTER_EXT_ARG = 1 << 3;
/** struct io_uring_getevents_arg { u64 sigmask; u32 sigmask_sz; u32 min_wait_usec; u64 ts; }. */
const extArg = Buffer.alloc(24);
/** struct __kernel_timespec { i64 tv_sec; i64 tv_nsec; }. */
const timespec = Buffer.alloc(16);

/** Submission entry opcodes and flags used here. */
export const OP_POLL_ADD = 6;
export const OP_READ = 22;
export const OP_URING_CMD = 46;
export const POLL_ADD_MULTI = 1;
/** cqe.flags: a multishot request stays armed. */
export const CQE_F_MORE = 1 << 1;

const PROT_RW = 3;
const MAP_SHARED_POPULATE = 0x1 | 0x8000;
const OFF_SQ_RING = 0n;
const OFF_SQES = 0x10000000n;
const PARAMS_SIZE = 120;
const EINTR = constants.errno.EINTR as number;
const ETIME = constants.errno.ETIME as number;
/** What ends a wait without an error: a signal; and for a timed wait, the time running out. */
const INTERRUPTED: readonly number[] = [EINTR];
const TIMED_OUT: readonly number[] = [EINTR, ETIME];

const c = once(() => ({
  setup: libc().func("long syscall(long number, uint32_t entries, void *params)"),
  enter: libc().func(
    "long syscall(long number, int fd, uint32_t toSubmit, uint32_t minComplete, uint32_t flags, void *sig, size_t sigsz)",
  ),
  mmap: libc().func("void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)"),
  munmap: libc().func("int munmap(void *addr, size_t len)"),
  sysconf: libc().func("long sysconf(int name)"),
}));

interface Mapped {
  ptr: unknown;
  len: number;
  buf: Buffer;
}

function map(fd: number, len: number, off: bigint): Mapped {
  const ptr = c().mmap(null, len, PROT_RW, MAP_SHARED_POPULATE, fd, off);
  if (ptr === null || koffi().address(ptr) === 0xffffffffffffffffn) throw sysError("mmap");
  return { ptr, len, buf: Buffer.from(koffi().view(ptr, len)) };
}

/** One completion: what the submission carried in user_data (low 32 bits), its result, its flags. */
export interface Completion {
  tag: number;
  res: number;
  flags: number;
}

export class Uring {
  readonly fd: number;
  readonly sqeSize: number;
  private readonly maps: Mapped[] = [];
  private readonly sqHead: Uint32Array;
  private readonly sqTail: Uint32Array;
  private readonly sqMask: number;
  private readonly sqEntries: number;
  private readonly sqArray: Uint32Array;
  private readonly sqes: Buffer;
  private readonly cqHead: Uint32Array;
  private readonly cqTail: Uint32Array;
  private readonly cqMask: number;
  private readonly cqes: Buffer;
  /** Entries queued and not yet submitted. */
  private queued = 0;
  private tail: number;

  /** A ring of `entries` submissions (a power of two) and `cqEntries` completions; `flags`: SETUP_*. */
  constructor(entries: number, cqEntries: number, flags: number) {
    const p = Buffer.alloc(PARAMS_SIZE);
    p.writeUInt32LE(cqEntries, 4);
    p.writeUInt32LE(flags | SETUP_CQSIZE, 8);
    const fd = Number(c().setup(SYS_IO_URING_SETUP, entries, p));
    if (fd < 0) throw sysError("io_uring_setup");
    this.fd = fd;
    try {
      this.sqeSize = flags & SETUP_SQE128 ? 128 : 64;
      const u32 = (off: number): number => p.readUInt32LE(off);
      const sqEntries = u32(0);
      const cqN = u32(4);
      if ((u32(20) & FEAT_SINGLE_MMAP) === 0)
        throw new Error("io_uring: kernel without a single ring mapping");
      const ringLen = Math.max(u32(64) + sqEntries * 4, u32(100) + cqN * 16);
      const ring = map(fd, ringLen, OFF_SQ_RING);
      this.maps.push(ring);
      const sqes = map(fd, sqEntries * this.sqeSize, OFF_SQES);
      this.maps.push(sqes);
      const word = (off: number): Uint32Array =>
        new Uint32Array(ring.buf.buffer, ring.buf.byteOffset + off, 1);
      this.sqHead = word(u32(40));
      this.sqTail = word(u32(44));
      this.sqMask = ring.buf.readUInt32LE(u32(48));
      this.sqEntries = sqEntries;
      this.sqArray = new Uint32Array(ring.buf.buffer, ring.buf.byteOffset + u32(64), sqEntries);
      this.sqes = sqes.buf;
      this.cqHead = word(u32(80));
      this.cqTail = word(u32(84));
      this.cqMask = ring.buf.readUInt32LE(u32(88));
      this.cqes = ring.buf.subarray(u32(100), u32(100) + cqN * 16);
      this.tail = Atomics.load(this.sqTail, 0);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /**
   * The next submission entry, zeroed but for what every entry has: its opcode, its descriptor and its
   * tag (user_data, low 32 bits: the completion's `tag`); submitted by the next `enter()`.
   */
  sqe(opcode: number, fd: number, tag: number): Buffer {
    while ((this.tail - Atomics.load(this.sqHead, 0)) >>> 0 >= this.sqEntries) this.enter(0);
    const index = this.tail & this.sqMask;
    const e = this.sqes.subarray(index * this.sqeSize, (index + 1) * this.sqeSize);
    e.fill(0);
    this.sqArray[index] = index;
    this.tail = (this.tail + 1) >>> 0;
    this.queued++;
    e.writeUInt8(opcode, 0);
    e.writeInt32LE(fd, 4);
    e.writeUInt32LE(tag, 32);
    return e;
  }

  /**
   * Submits what is queued and, with `waitFor` > 0, waits for that many completions. Returns the number
   * submitted, or -1 when a signal interrupted the wait (call again).
   */
  enter(waitFor: number): number {
    return this.enterWith(waitFor, waitFor > 0 ? ENTER_GETEVENTS : 0, null, 0, INTERRUPTED);
  }

  /**
   * Submits what is queued and waits up to `timeoutMs` for one completion (IORING_ENTER_EXT_ARG with a
   * timeout): returns false when the time ran out or a signal came, true otherwise.
   */
  enterTimed(timeoutMs: number): boolean {
    timespec.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
    timespec.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1_000_000), 8);
    extArg.writeBigUInt64LE(addressOf(timespec), 16);
    const flags = ENTER_GETEVENTS | ENTER_EXT_ARG;
    return this.enterWith(1, flags, extArg, extArg.length, TIMED_OUT) >= 0;
  }

  /** io_uring_enter(2) of what is queued: the count submitted, or -1 for an errno in `soft`. */
  private enterWith(
    waitFor: number,
    flags: number,
    arg: Buffer | null,
    argSize: number,
    soft: readonly number[],
  ): number {
    Atomics.store(this.sqTail, 0, this.tail);
    const n = Number(c().enter(SYS_IO_URING_ENTER, this.fd, this.queued, waitFor, flags, arg, argSize));
    if (n < 0) {
      const errno = koffi().errno();
      if (soft.includes(errno)) return -1;
      throw sysError("io_uring_enter", undefined, errno);
    }
    this.queued -= Math.min(n, this.queued);
    return n;
  }

  /** Entries queued and not yet submitted. */
  get pending(): number {
    return this.queued;
  }

  /** Takes every completion there is, oldest first. */
  completions(): Completion[] {
    const out: Completion[] = [];
    let head = Atomics.load(this.cqHead, 0);
    const tail = Atomics.load(this.cqTail, 0);
    while (head !== tail) {
      const at = (head & this.cqMask) * 16;
      out.push({
        tag: this.cqes.readUInt32LE(at),
        res: this.cqes.readInt32LE(at + 8),
        flags: this.cqes.readUInt32LE(at + 12),
      });
      head = (head + 1) >>> 0;
    }
    Atomics.store(this.cqHead, 0, head);
    return out;
  }

  close(): void {
    for (const m of this.maps.splice(0)) c().munmap(m.ptr, m.len);
    closeFd(this.fd);
  }
}

const SC_PAGESIZE = 30;

/**
 * Queues a read(2)-like read of `length` bytes of `fd` at `offset` into the memory at `address` (which
 * must stay alive until its completion), tagged `tag`: its completion's result is the count read or a
 * negative errno. A read of cached pages completes during the submitting `enter`.
 */
export function queueRead(
  uring: Uring,
  fd: number,
  offset: bigint,
  address: bigint,
  length: number,
  tag: number,
): void {
  const sqe = uring.sqe(OP_READ, fd, tag);
  sqe.writeBigUInt64LE(offset, 8);
  sqe.writeBigUInt64LE(address, 16);
  sqe.writeUInt32LE(length, 24);
}

/** The size of a memory page (4 KiB on x86-64; 16 or 64 KiB on some arm64 kernels). */
export function pageSize(): number {
  return Number(c().sysconf(SC_PAGESIZE));
}

/** The address of a Buffer's bytes, for pointers inside submission entries (the Buffer must stay alive). */
export function addressOf(buf: Buffer): bigint {
  return BigInt(koffi().address(buf) as bigint | number);
}
