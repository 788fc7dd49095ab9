/**
 * Turning result rows into the summary (JSON) and the markdown tables.
 *
 * Invariants:
 * - A cell is the median over reps of the rows that produced a number (`ok` or `partial`); a cell with no
 *   such row shows the status of its first row (timeout, error, skip).
 * - Every figure carries its ratio to kernel overlayfs from the same run, as a relative speed: above 1 is
 *   faster than the kernel, below 1 slower. For times (unit "s") the ratio is kernel/value, so the same
 *   reading holds. Peak RSS has no kernel figure and so no ratio.
 * - Daemon CPU per unit = the daemon's CPU seconds divided by the work done (files, stats, MiB…).
 */
import type { Row, Status } from "./workloads";

export interface Cell {
  workload: string;
  system: string;
  unit: string;
  per: string;
  n: number;
  median: number | null;
  min: number | null;
  max: number | null;
  /** Half the min-max range in % of the median (reps ≥ 2). */
  spread_pct: number | null;
  /** Speed relative to kernel overlayfs (see the header). */
  ratio: number | null;
  status: Status;
  daemon_cpu_s: number | null;
  /** Daemon CPU µs per unit of work (`per`). */
  cpu_us_per: number | null;
  noisy: boolean;
  foreign_drops: boolean;
  notes: string[];
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const lowerIsBetter = (unit: string): boolean => unit === "s" || unit === "MiB";

export function summarize(
  rows: readonly Row[],
  systems: readonly string[],
  workloads: readonly string[],
): Cell[] {
  const cells: Cell[] = [];
  for (const w of workloads) {
    for (const sys of systems) {
      const rs = rows.filter((r) => r.workload === w && r.system === sys);
      if (rs.length === 0) continue;
      const good = rs.filter((r) => (r.status === "ok" || r.status === "partial") && r.value !== null);
      const vals = good.map((r) => r.value as number);
      const cpus = good.map((r) => r.daemon_cpu_s).filter((c): c is number => c !== null);
      const perUnit = good
        .filter((r) => r.daemon_cpu_s !== null && r.amount)
        .map((r) => ((r.daemon_cpu_s as number) / (r.amount as number)) * 1e6);
      const med = median(vals);
      const first = rs[0] as Row;
      cells.push({
        workload: w,
        system: sys,
        unit: good[0]?.unit ?? first.unit,
        per: good[0]?.per ?? first.per,
        n: vals.length,
        median: med,
        min: vals.length ? Math.min(...vals) : null,
        max: vals.length ? Math.max(...vals) : null,
        spread_pct: vals.length > 1 && med ? ((Math.max(...vals) - Math.min(...vals)) / 2 / med) * 100 : null,
        ratio: null,
        status: good.some((r) => r.status === "partial")
          ? "partial"
          : good.length
            ? "ok"
            : (rs.find((r) => r.status !== "ok")?.status ?? first.status),
        daemon_cpu_s: median(cpus),
        cpu_us_per: median(perUnit),
        noisy: rs.some((r) => (r.other_cpu ?? 0) >= 0.3),
        foreign_drops: rs.some((r) => (r.foreign_drops ?? 0) > 0),
        notes: [...new Set(rs.map((r) => r.note).filter((n) => n !== ""))],
      });
    }
  }
  for (const c of cells) {
    const k = cells.find((x) => x.workload === c.workload && x.system === "kernel");
    if (!k || k.median === null || c.median === null || c.median === 0 || k.median === 0) continue;
    c.ratio = lowerIsBetter(c.unit) ? k.median / c.median : c.median / k.median;
  }
  return cells;
}

/** 3 significant digits, no exponent. */
export function fmt(x: number | null): string {
  if (x === null) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toString();
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

function cellText(c: Cell | undefined): string {
  if (!c) return "";
  if (c.median === null) return c.status;
  let s = fmt(c.median);
  if (c.ratio !== null) s += ` (${c.ratio.toFixed(2)})`;
  if (c.spread_pct !== null) s += ` ±${c.spread_pct.toFixed(0)}%`;
  if (c.status === "partial") s += " partial";
  if (c.noisy) s += " †";
  if (c.foreign_drops) s += " ‡";
  return s;
}

function table(header: string[], body: string[][]): string {
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const r of body) lines.push(`| ${r.join(" | ")} |`);
  return lines.join("\n");
}

export function markdown(
  cells: readonly Cell[],
  systems: readonly string[],
  workloads: readonly string[],
  title: string,
): string {
  const get = (w: string, s: string): Cell | undefined =>
    cells.find((c) => c.workload === w && c.system === s);
  const present = workloads.filter((w) => systems.some((s) => get(w, s)));
  const unitOf = (w: string): string => {
    const u = systems.map((s) => get(w, s)?.unit).find((x) => x);
    return u ? `${u} ${lowerIsBetter(u) ? "↓" : "↑"}` : "";
  };
  const out: string[] = [`## ${title}`, ""];
  out.push(
    "Median (speed relative to kernel overlayfs in this run: 1.00 = kernel, 0.50 = half its speed). " +
      "↑ higher is better, ↓ lower is better. † others kept ≥ 0.3 CPU busy meanwhile; " +
      "‡ someone else dropped the caches meanwhile.",
    "",
  );
  out.push(
    table(
      ["workload", "unit", ...systems],
      present.map((w) => [w, unitOf(w), ...systems.map((s) => cellText(get(w, s)))]),
    ),
  );
  const daemons = systems.filter((s) => s !== "kernel");
  const cpuRows = present.filter((w) => daemons.some((s) => get(w, s)?.daemon_cpu_s != null));
  if (cpuRows.length) {
    out.push(
      "",
      "Daemon CPU seconds (user + system, all threads) during each workload, and µs per unit of work.",
      "",
    );
    out.push(
      table(
        ["workload", "per", ...daemons],
        cpuRows.map((w) => [
          w,
          systems.map((s) => get(w, s)?.per).find((p) => p) ?? "",
          ...daemons.map((s) => {
            const c = get(w, s);
            if (!c || c.daemon_cpu_s === null) return "";
            return `${fmt(c.daemon_cpu_s)} s${c.cpu_us_per !== null ? `, ${fmt(c.cpu_us_per)} µs` : ""}`;
          }),
        ]),
      ),
    );
  }
  const notes = cells.filter((c) => c.notes.length && (c.status !== "ok" || c.median === null));
  if (notes.length) {
    out.push("", "Notes:", "");
    for (const c of notes) out.push(`- ${c.system} ${c.workload} (${c.status}): ${c.notes.join("; ")}`);
  }
  return `${out.join("\n")}\n`;
}
