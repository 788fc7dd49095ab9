/**
 * Entry of a queue thread (queue-threads.ts): one per CPU, pinned to it, owning that CPU's FUSE queue.
 * It registers the queue's entries through an io_uring of its own, hands each request that arrives to
 * the state thread (queue-words.ts), and commits each reply the state thread wrote. A READ of a handle
 * the state thread published (direct-reads.ts) it reads itself instead: an io_uring read into the
 * entry's payload, committed when it completes (at once when the pages are cached; a read that waits
 * for the disk holds up nothing, the thread goes on meanwhile). The kernel queues a request on the
 * queue of its caller's CPU, so the thread woken for it runs where the caller sleeps: no wake-up across
 * CPUs, which on a VM costs more than serving the request.
 *
 * Invariants:
 * - Only this thread submits on its ring and commits its queue's entries; it touches an entry's memory
 *   only while the entry is KERNEL (receiving a request, reading a READ's data into it, committing a
 *   reply). A READ it reads itself is committed once its read completes (handed over only if that read
 *   answers EAGAIN), and its reply is never undone by the state thread. The ring is closed only once every such read has completed: a thread whose reads do not
 *   end within DRAIN_MS leaves it open (the reads write into the entries' memory).
 * - While a request it handed over is unanswered, it spins (yielding the CPU at every turn) for up to
 *   `spinUs` before it sleeps, so a quick answer needs no wake-up, unless other threads than the mount's
 *   own want the CPUs (spin.ts); asleep, a byte on `wakeFd` wakes it, and it looks again every SLEEP_MS.
 * - It ends when the kernel ends its entries (the session is over: it sets W_GONE and rings the state
 *   thread), or when told to (W_STOP and a byte on `wakeFd`); its ring is closed then, which takes the
 *   entries back from the kernel. It counts itself out of W_ALIVE last.
 * - Setup: W_SETTLED is counted once its entries are registered, or once that failed (W_REFUSED for a
 *   refused REGISTER, W_FAILED otherwise).
 */
import { constants } from "node:os";
import { workerData } from "node:worker_threads";
import { CQE_F_MORE, POLL_ADD_MULTI, queueRead, SETUP_SQE128, Uring } from "../../sys/uring";
import { codeOfErrno, errorText } from "../../errors";
import { drainPipe, pinToCpu } from "../../sys/libc";
import { logLine, useLog, type LogSink } from "./log";
import {
  commitEntry,
  fillReply,
  nextPowerOfTwo,
  pollFd,
  receive,
  recoverEntry,
  registerEntry,
  payloadAddress,
  sessionEnded,
  type RingEntry,
} from "./ring";
import { Spinner } from "./spin";
import { directFd } from "./direct-reads";
import { Op, Size } from "./protocol";
import * as W from "./queue-words";
import { ring } from "./queue-words";

export interface QueueWorkerData {
  shared: W.SharedQueues;
  qid: number;
  devFd: number;
  /** Read end (non-blocking) of the pipe that wakes this thread, and its write end (to stop it: link.ts). */
  wakeFd: number;
  wakeWriteFd: number;
  /** Write end of the state thread's doorbell. */
  doorbellFd: number;
  spinUs: number;
  log: LogSink;
  /** Log each READ read here (the serving thread logs every other request). */
  debug: boolean;
}

const TAG_WAKE = 0xffff0002;
/** A read for the entry tagged with the other bits (a tag is far below this). */
const TAG_READ = 0x40000000;

const EIO = constants.errno.EIO as number;
const EAGAIN = constants.errno.EAGAIN as number;
const SLEEP_MS = 1000;

class QueueThread {
  private readonly view: W.QueueView;
  private readonly mine: RingEntry[];
  private readonly uring: Uring;
  private readonly spin: Spinner;
  private readonly sleepWord: number;
  private readonly reads: Int32Array;
  private gone = false;
  /** With `debug`: what each entry's read in flight is ("READ #unique node=N fh=F size@offset", as the
   * serving thread names requests: dispatch.ts), for its log line. */
  private readonly reading = new Map<number, string>();
  /**
   * Entries whose last commit was this thread's own reply (a READ it read): a refusal of such a reply
   * has nothing to undo, and must not make the state thread undo the last reply it wrote on the entry.
   */
  private readonly ownReply = new Set<number>();
  /** Reads queued by `readDirect` whose completion has not been seen. */
  private readsInFlight = 0;

  constructor(private readonly d: QueueWorkerData) {
    this.view = new W.QueueView(d.shared);
    this.mine = this.view.queueEntries(d.qid);
    this.sleepWord = this.view.queueWord(d.qid, W.Q_SLEEPING);
    this.reads = new Int32Array(d.shared.reads);
    const mates = { words: this.view.words, index: W.W_SPINNING };
    this.spin = new Spinner(BigInt(Math.round(d.spinUs * 1000)), mates);
    const size = nextPowerOfTwo(this.mine.length * 2 + 4);
    this.uring = new Uring(size, size * 2, SETUP_SQE128);
  }

  /** Registers the queue's entries; throws an errno error when the kernel refuses one. */
  setUp(): void {
    for (const e of this.mine) registerEntry(this.uring, this.d.devFd, e);
    this.pollWake();
    this.uring.enter(0);
    const seen = this.uring.completions();
    const refused = seen.find((c) => c.res < 0 && c.tag !== TAG_WAKE);
    if (refused !== undefined) throw Object.assign(new Error("REGISTER refused"), { errno: -refused.res });
    for (const c of seen) this.completed(c.tag, c.res, c.flags);
  }

  serve(): void {
    for (;;) {
      if (this.gone || this.view.get(W.W_STOP) === 1) return;
      let did = this.commitDone();
      if (this.uring.pending > 0) this.uring.enter(0);
      for (const c of this.uring.completions()) did = this.completed(c.tag, c.res, c.flags) || did;
      if (did) {
        this.spin.reset();
        continue;
      }
      if (this.outstanding() && this.spin.again()) continue;
      this.sleep();
    }
  }

  /** Closes the ring once no read of this thread's runs: its memory is the entries', which may go. */
  close(): void {
    const deadline = Date.now() + W.DRAIN_MS;
    while (this.readsInFlight > 0 && Date.now() < deadline) {
      this.uring.enterTimed(Math.max(1, deadline - Date.now()));
      for (const c of this.uring.completions()) if (isRead(c.tag)) this.readsInFlight--;
    }
    if (this.readsInFlight === 0) this.uring.close();
    // Else the ring stays open until the process ends: closing it would not wait for those reads, which
    // would then write into memory that may be gone.
    else
      logLine(
        `io_uring queue ${this.d.qid}: ${this.readsInFlight} read(s) still running; ring left open`,
        "warning",
      );
  }

  /**
   * Sleeps until a completion (a request, a wake-up) or SLEEP_MS: a thread told to stop whose wake-up
   * got lost still ends, and never holds up the process's exit for long.
   */
  private sleep(): void {
    this.view.set(this.sleepWord, 1);
    if (!this.anyDone() && this.view.get(W.W_STOP) === 0) this.uring.enterTimed(SLEEP_MS);
    this.view.set(this.sleepWord, 0);
  }

  /** Commits every reply the state thread wrote; true if there was one. */
  private commitDone(): boolean {
    let did = false;
    for (const e of this.mine) {
      const state = this.view.entryWord(e.tag, W.E_STATE);
      if (this.view.get(state) !== W.DONE) continue;
      this.view.set(state, W.KERNEL);
      this.ownReply.delete(e.tag);
      commitEntry(this.uring, this.d.devFd, e);
      did = true;
    }
    return did;
  }

  private anyDone(): boolean {
    return this.mine.some((e) => this.view.get(this.view.entryWord(e.tag, W.E_STATE)) === W.DONE);
  }

  /** Whether a request of this queue waits for the state thread. */
  private outstanding(): boolean {
    return this.mine.some((e) => {
      const s = this.view.get(this.view.entryWord(e.tag, W.E_STATE));
      return s === W.WAITING || s === W.TAKEN;
    });
  }

  /** One completion; true when it brought work (a request, a wake-up). */
  private completed(tag: number, res: number, flags: number): boolean {
    if (tag === TAG_WAKE) {
      if ((flags & CQE_F_MORE) === 0) this.pollWake();
      drainPipe(this.d.wakeFd);
      return true;
    }
    if (isRead(tag)) {
      this.readsInFlight--;
      return this.readDone(tag & ~TAG_READ, res);
    }
    const e = this.view.entries[tag];
    if (e === undefined || e.qid !== this.d.qid) return false;
    if (res < 0) return this.failed(e, -res);
    const request = receive(e);
    if (request === null) {
      logLine(`io_uring entry ${tag}: malformed request (length fields disagree); answered EIO`, "warning");
      fillReply(e, EIO, [], (l) => logLine(l, "warning"));
      commitEntry(this.uring, this.d.devFd, e);
      return true;
    }
    this.ownReply.delete(tag); // a request came: the entry's last reply was taken
    if (!this.readDirect(e, request)) this.handOver(e, request);
    return true;
  }

  /** Gives the request `e` holds to the state thread (WAITING), and wakes it if it sleeps. */
  private handOver(e: RingEntry, request: Buffer): void {
    const v = this.view;
    v.set(v.entryWord(e.tag, W.E_REQ_START), request.byteOffset - e.buf.byteOffset);
    v.set(v.entryWord(e.tag, W.E_REQ_LEN), request.length);
    v.set(v.entryWord(e.tag, W.E_SEQ), Atomics.add(v.words, W.W_SEQ, 1));
    v.set(v.entryWord(e.tag, W.E_STATE), W.WAITING);
    this.ringState();
  }

  /**
   * Reads a READ of a published handle (direct-reads.ts) into `e`'s payload: queued on the ring, answered
   * by `readDone`. False for any other request, and for a READ the state thread must serve.
   */
  private readDirect(e: RingEntry, request: Buffer): boolean {
    if (request.readUInt32LE(4) !== Op.READ || this.view.get(W.W_STOP) === 1) return false;
    const r = readOf(request);
    const fd = directFd(this.reads, r.fh);
    if (fd < 0 || r.size > e.payload.length) return false;
    queueRead(this.uring, fd, r.offset, payloadAddress(e), r.size, TAG_READ | e.tag);
    this.readsInFlight++;
    if (this.d.debug) {
      const node = request.readBigUInt64LE(16);
      this.reading.set(e.tag, `READ #${e.commitId} node=${node} fh=${r.fh} ${r.size}@${r.offset}`);
    }
    return true;
  }

  /**
   * The read for entry `tag` ended with `res` (bytes read, or a negative errno): its reply is committed.
   * EAGAIN (a non-blocking descriptor on a filesystem io_uring cannot read without waiting, where
   * pread(2) would have waited) hands the request to the state thread instead.
   */
  private readDone(tag: number, res: number): boolean {
    const e = this.view.entries[tag];
    if (e === undefined) return false;
    if (res === -EAGAIN && e.request !== null) {
      this.reading.delete(tag);
      this.handOver(e, e.request);
      return true;
    }
    const warn = (l: string): void => logLine(l, "warning");
    const label = this.reading.get(tag);
    if (label !== undefined) {
      this.reading.delete(tag);
      logLine(
        `${label} -> ${res < 0 ? codeOfErrno(-res) : `0 (${res} bytes read on queue ${this.d.qid})`}`,
        "debug",
      );
    }
    if (res < 0) fillReply(e, -res, [], warn);
    else fillReply(e, 0, [e.payload.subarray(0, res)], warn);
    commitEntry(this.uring, this.d.devFd, e);
    this.ownReply.add(tag);
    return true;
  }

  /** A command on `e` failed: the session's end, a refused reply (undone by the state thread), a REGISTER. */
  private failed(e: RingEntry, errno: number): boolean {
    if (sessionEnded(errno)) {
      this.gone = true;
      Atomics.compareExchange(this.view.words, W.W_GONE, 0, W.GONE_ENDED);
      this.ringState(true);
      return true;
    }
    if (!recoverEntry(this.uring, this.d.devFd, e, errno, (l) => logLine(l, "warning"))) return false;
    if (this.ownReply.delete(e.tag)) return true; // this thread's READ reply: nothing to undo
    // A refused reply: the flag is set before the REGISTER just queued is submitted (the next enter),
    // so the state thread sees it before any later request of the entry.
    this.view.set(this.view.entryWord(e.tag, W.E_REFUSED), 1);
    this.ringState();
    return true;
  }

  /** Wakes the state thread if it sleeps (or `always`). */
  private ringState(always = false): void {
    if (Atomics.exchange(this.view.words, W.W_STATE_SLEEPING, 0) === 1 || always) ring(this.d.doorbellFd);
  }

  private pollWake(): void {
    pollFd(this.uring, this.d.wakeFd, TAG_WAKE, POLL_ADD_MULTI);
  }
}

/** A READ's fuse_read_in: handle, offset, size. */
function readOf(request: Buffer): { fh: bigint; offset: bigint; size: number } {
  return {
    fh: request.readBigUInt64LE(Size.IN_HEADER),
    offset: request.readBigUInt64LE(Size.IN_HEADER + 8),
    size: request.readUInt32LE(Size.IN_HEADER + 16),
  };
}

function isRead(tag: number): boolean {
  return tag >>> 30 === TAG_READ >>> 30;
}

function main(d: QueueWorkerData): void {
  useLog(d.log);
  const view = new W.QueueView(d.shared);
  let t: QueueThread | undefined;
  try {
    if (!pinToCpu(d.qid)) logLine(`io_uring queue ${d.qid}: not pinned to its CPU (offline?)`, "info");
    t = new QueueThread(d);
    t.setUp();
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    if (typeof errno === "number" && err instanceof Error && err.message === "REGISTER refused")
      Atomics.compareExchange(view.words, W.W_REFUSED, 0, errno);
    else {
      logLine(`io_uring queue ${d.qid}: setup failed: ${errorText(err)}`, "error");
      view.set(W.W_FAILED, 1);
    }
    t?.close();
    t = undefined;
  }
  Atomics.add(view.words, W.W_SETTLED, 1);
  Atomics.notify(view.words, W.W_SETTLED);
  try {
    t?.serve();
  } catch (err) {
    logLine(`io_uring queue ${d.qid}: stopped by an error: ${errorText(err)}`, "error");
    Atomics.compareExchange(view.words, W.W_GONE, 0, W.GONE_FAILED);
    ring(d.doorbellFd);
  } finally {
    t?.close();
    Atomics.sub(view.words, W.W_ALIVE, 1);
    Atomics.notify(view.words, W.W_ALIVE);
  }
}

main(workerData as QueueWorkerData);
