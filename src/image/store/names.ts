/**
 * Image names (`[registry[:port]/]path[:tag]`, as Docker and podman write them) and how a name typed by
 * the user finds one in the store.
 *
 * Invariants: a stored name always carries a tag (`:latest` when none was given) and is checked against
 * the reference grammar (lower-case path components, a tag of at most 128 characters); lookups try the
 * name as typed, then with `:latest`, then under `localhost/` (podman's prefix for local images), so
 * `busybox` finds `localhost/busybox:latest`.
 */
import { UsageError } from "../../errors";

const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const HOST =
  "(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)";
const REPO = new RegExp(`^(?:${HOST}/)?${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Splits `repo[:tag]` at the tag's colon (a colon before the last '/' belongs to a registry port). */
export function splitName(name: string): { repo: string; tag: string | undefined } {
  const colon = name.lastIndexOf(":");
  if (colon > name.lastIndexOf("/")) return { repo: name.slice(0, colon), tag: name.slice(colon + 1) };
  return { repo: name, tag: undefined };
}

/** Whether `name` is a valid image name (with or without a tag). */
export function isImageName(name: string): boolean {
  const { repo, tag } = splitName(name);
  return REPO.test(repo) && repo.length <= 255 && (tag === undefined || TAG.test(tag));
}

/** `name` with `:latest` added when it has no tag; a UsageError when it is not an image name. */
export function normalizeName(name: string, what = "image name"): string {
  if (!isImageName(name)) {
    throw new UsageError(
      `'${name}' is not a valid ${what} (lower-case [registry/]path[:tag], e.g. localhost/app:1.0)`,
    );
  }
  return splitName(name).tag === undefined ? `${name}:latest` : name;
}

/** The stored names `typed` may mean, most specific first. */
export function nameCandidates(typed: string): string[] {
  const out = [typed];
  if (splitName(typed).tag === undefined) out.push(`${typed}:latest`);
  if (!typed.startsWith("localhost/")) {
    out.push(`localhost/${typed}`);
    if (splitName(typed).tag === undefined) out.push(`localhost/${typed}:latest`);
  }
  return out;
}
