/**
 * Union cores for the fuse-native fixture (serve-native.ts): the real core from createUnion, changed in
 * one way each, to pin what the binding does with what a plain mount cannot produce on demand.
 *
 * - `hugeInodes`: every inode number gets a layer-style tag in its top bits (5 << 56).
 * - `slowOpen`: opening a file whose name contains "slow" first takes SLOW_MS (longer than fuse-native's
 *   default 15 s per-op timeout).
 * - `oddErrors`: getattr of "/odd-error" throws an Error with no errno, of "/odd-code" one whose code
 *   is not an errno name.
 */
import { createUnion } from "../../../src/unionfs";
import type { Attr, DirEntry, UnionConfig, UnionOps } from "../../../src/unionfs";

export const INO_TAG = 5n << 56n;
/** What the core's merged listing reports as d_ino (it does not stat entries). */
export const UNKNOWN_INO = 0xffff_ffffn;
export const SLOW_MS = 16_000;

function isAttr(v: unknown): v is Attr {
  return typeof v === "object" && v !== null && typeof (v as Attr).ino === "bigint" && "mode" in v;
}

/** A proxy of `ops` that post-processes results with `map` and may pre-empt calls with `before`. */
function wrap(
  ops: UnionOps,
  map: (name: string, result: unknown) => unknown,
  before?: (name: string, args: unknown[]) => void,
): UnionOps {
  return new Proxy(ops, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== "function" || typeof prop !== "string") return v;
      return (...args: unknown[]) => {
        before?.(prop, args);
        return map(prop, (v as (...a: unknown[]) => unknown).apply(target, args));
      };
    },
  });
}

export function hugeInodes(config: UnionConfig): UnionOps {
  const tag = (a: Attr): Attr => ({ ...a, ino: a.ino ^ INO_TAG });
  return wrap(createUnion(config), (name, r) => {
    if (isAttr(r)) return tag(r);
    if (name === "create") {
      const c = r as { fh: number; attr: Attr };
      return { fh: c.fh, attr: tag(c.attr) };
    }
    if (name === "readdir") {
      return (r as DirEntry[]).map((e) => (e.ino === UNKNOWN_INO ? e : { ...e, ino: e.ino ^ INO_TAG }));
    }
    return r;
  });
}

export function slowOpen(config: UnionConfig): UnionOps {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  return wrap(
    createUnion(config),
    (_name, r) => r,
    (name, args) => {
      if (name === "open" && String(args[0]).includes("slow")) Atomics.wait(nap, 0, 0, SLOW_MS);
    },
  );
}

export function oddErrors(config: UnionConfig): UnionOps {
  return wrap(
    createUnion(config),
    (_name, r) => r,
    (name, args) => {
      if (name !== "getattr") return;
      if (args[0] === "/odd-error") throw new Error("a bug, not an errno");
      if (args[0] === "/odd-code") throw Object.assign(new Error("odd"), { code: "EWHATEVER" });
    },
  );
}
