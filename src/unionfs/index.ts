/** The union core's public face: build a `UnionOps` from a `UnionConfig`. (Implementation in progress.) */
import type { UnionConfig } from "./config";
import type { UnionOps } from "./types";
import { fsError } from "../errors";

export function createUnion(_config: UnionConfig): UnionOps {
  throw fsError("ENOSYS", "union core not built yet");
}
