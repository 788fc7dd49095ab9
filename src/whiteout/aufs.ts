/**
 * The aufs (and OCI image) format: an entry `.wh.<name>` hides `<name>`; an entry `.wh..wh..opq` makes
 * its directory opaque. Every name starting with `.wh.` belongs to the format (aufs keeps its own
 * bookkeeping under `.wh..wh.*`, and the union its default work dir), so none is ever part of the view.
 *
 * Invariant: a name of more than NAME_MAX - 4 bytes has no room for the prefix; its whiteout cannot be
 * written in this format (`Unsupported`: the registry writes another one).
 */
import * as fs from "node:fs";
import { fsError } from "../errors";
import type { WritableLayer } from "../layer";
import { discard, Unsupported, type Format } from "./format";

export const WH_PREFIX = ".wh.";
export const OPAQUE_MARKER = ".wh..wh..opq";
/** Default work dir name inside the writable branch (hidden like every `.wh.` name). */
export const WORKDIR_NAME = ".wh..wh.unionfs";

/** NAME_MAX: an aufs whiteout for a name longer than this minus 4 cannot exist. */
const NAME_MAX = 255;

function markerOf(name: string): string | undefined {
  return WH_PREFIX.length + name.length <= NAME_MAX ? WH_PREFIX + name : undefined;
}

/** Creates the empty, read-only marker file `rel` (an existing one is kept). */
export function touch(layer: WritableLayer, rel: string): void {
  layer.create(rel, fs.constants.O_WRONLY, 0o444).close();
}

/** `.wh.<name>` in `dir`; Unsupported when the name has no room for the prefix. */
function markerPath(dir: string, name: string): string {
  const marker = markerOf(name);
  if (marker === undefined) throw new Unsupported(fsError("ENAMETOOLONG", `no room for ${WH_PREFIX}`));
  return `${dir}/${marker}`;
}

export const aufs: Format = {
  name: "aufs",
  reserves: (name) => name.startsWith(WH_PREFIX),
  markerOf,
  hiddenBy(entry) {
    const name = entry.name;
    if (!name.startsWith(WH_PREFIX) || name.startsWith(WH_PREFIX + WH_PREFIX)) return undefined;
    return name.slice(WH_PREFIX.length);
  },
  isOpaque: (dir) => dir.hasEntry(OPAQUE_MARKER),
  writer: {
    whiteOut(upper, dir, name) {
      const marker = markerPath(dir, name);
      touch(upper, marker);
      return marker.slice(dir.length + 1);
    },
    replace(upper, dir, name, work) {
      touch(upper, markerPath(dir, name));
      discard(upper, `${dir}/${name}`, work);
    },
    renameWithWhiteout(upper, dir, name, to) {
      touch(upper, markerPath(dir, name));
      upper.rename(`${dir}/${name}`, to);
    },
    makeOpaque(layer, dir) {
      touch(layer, `${dir}/${OPAQUE_MARKER}`);
    },
  },
};
