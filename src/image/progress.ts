/**
 * Progress of long work (import, export, and the image store's load, commit and save) on one line of a
 * terminal: bytes, entries, rate and, when the total is known, percentage and ETA.
 *
 * Invariants:
 * - Draws only when enabled: the stream is a TTY and the caller is not `--quiet`; otherwise every call
 *   is a no-op, so the output of a pipe or a log never holds progress text.
 * - Redraws at most every `intervalMs` (default 200 ms), from the calls themselves (no timers): nothing
 *   keeps the process alive and nothing draws after `done()`.
 * - The line is rewritten in place (`\r`, erase to end of line) and never wider than the terminal;
 *   `log()` clears it, writes a whole line and redraws, so warnings are not mixed into it; `done()`
 *   leaves one final summary line.
 */

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

export interface ProgressOptions {
  /** Where to draw (default process.stderr). */
  stream?: ProgressStream;
  /** No drawing at all (`--quiet`). */
  quiet?: boolean;
  /** Total bytes, when known, for a percentage and an ETA. */
  total?: number;
  intervalMs?: number;
  /** Milliseconds clock (for tests). */
  now?: () => number;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** "12.3 MiB" */
export function formatBytes(n: number): string {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}

/** "45s", "3m05s", "2h07m" */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** What a count counts: singular and plural. */
export type CountUnit = readonly [one: string, many: string];

function count(n: number, unit: CountUnit): string {
  return n === 1 ? `1 ${unit[0]}` : `${n} ${unit[1]}`;
}

export class Progress {
  readonly enabled: boolean;
  /** Total bytes, when known (may be set once the work knows it). */
  total: number | undefined;
  bytes = 0;
  entries = 0;
  /** What `entries` counts (archive entries unless the work says otherwise, e.g. layers). */
  unit: CountUnit = ["entry", "entries"];
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly interval: number;
  private readonly started: number;
  private lastDraw = -Infinity;
  private drawn = false;
  private finished = false;

  constructor(
    private readonly label: string,
    opts: ProgressOptions = {},
  ) {
    this.stream = opts.stream ?? process.stderr;
    this.enabled = !opts.quiet && this.stream.isTTY === true;
    this.now = opts.now ?? Date.now;
    this.interval = opts.intervalMs ?? 200;
    this.total = opts.total;
    this.started = this.now();
  }

  /** `bytes` more bytes and `entries` more entries done. */
  add(bytes: number, entries = 0): void {
    this.bytes += bytes;
    this.entries += entries;
    if (!this.enabled || this.finished) return;
    const t = this.now();
    if (t - this.lastDraw < this.interval) return;
    this.lastDraw = t;
    this.draw(this.line(t));
  }

  /** Writes `line` (without its newline) above the progress line. */
  log(line: string): void {
    if (this.drawn) this.stream.write("\r\x1b[K");
    this.stream.write(`${line}\n`);
    this.drawn = false;
    if (this.enabled && !this.finished && this.lastDraw > -Infinity) this.draw(this.line(this.now()));
  }

  /** Ends the display: a final summary line when `ok`, else the line is just cleared. */
  done(ok = true): void {
    if (!this.enabled || this.finished) return;
    this.finished = true;
    const elapsed = (this.now() - this.started) / 1000;
    if (!ok) {
      if (this.drawn) this.stream.write("\r\x1b[K");
      return;
    }
    const rate = elapsed > 0 ? `, ${formatBytes(this.bytes / elapsed)}/s` : "";
    this.draw(
      `${formatBytes(this.bytes)}, ${count(this.entries, this.unit)} in ${formatDuration(elapsed)}${rate}`,
    );
    this.stream.write("\n");
    this.drawn = false;
  }

  /** The progress line at time `t`, without the label. */
  line(t: number): string {
    const elapsed = (t - this.started) / 1000;
    const rate = elapsed > 0 ? this.bytes / elapsed : 0;
    const parts = [formatBytes(this.bytes)];
    if (this.total !== undefined && this.total > 0) {
      const pct = Math.min(100, Math.floor((100 * this.bytes) / this.total));
      parts[0] += ` of ${formatBytes(this.total)} (${pct}%)`;
    }
    parts.push(count(this.entries, this.unit));
    if (rate > 0) parts.push(`${formatBytes(rate)}/s`);
    if (this.total !== undefined && rate > 0 && this.bytes < this.total) {
      parts.push(`ETA ${formatDuration((this.total - this.bytes) / rate)}`);
    }
    return parts.join(", ");
  }

  /** Draws `label: text`, shortening the label (then the text) to fit the terminal. */
  private draw(text: string): void {
    const width = (this.stream.columns || 80) - 1; // 0 when the terminal does not say
    const room = width - text.length - 2;
    const label = this.label.length <= room ? this.label : `…${this.label.slice(-Math.max(0, room - 1))}`;
    const line = `${label}: ${text}`;
    this.stream.write(`\r${line.length > width ? line.slice(0, width) : line}\x1b[K`);
    this.drawn = true;
  }
}
