/**
 * Telling a mistyped command from a branch list: `mount` is the default command, so `unionfs-ts unmount
 * C` would otherwise be read as mounting a branch named "unmount".
 *
 * Invariant: only a bare word (no '/', ':' or '='), close to a command name and naming nothing on disk,
 * is called a typo: an existing directory of any name is still a branch.
 */
import * as fs from "node:fs";

/** Edit distance of two short words (for "did you mean"). */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] as number;
      row[j] = Math.min(cur + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] as number;
}

/**
 * A first argument that is a typo of a command (`unmount`, `mnt`) rather than a branch list: a bare word
 * close to a command name that names nothing on disk. Returns the error line, or undefined.
 */
export function unknownCommand(argv: readonly string[], commands: readonly string[]): string | undefined {
  const [first, second] = argv;
  if (first === "help" && second !== undefined && !second.startsWith("-") && !commands.includes(second)) {
    return `unknown command '${second}'`;
  }
  if (first === undefined || first.startsWith("-") || commands.includes(first) || /[/:=]/.test(first)) {
    return undefined;
  }
  if (fs.existsSync(first)) return undefined;
  const near = commands
    .filter((c) => distance(first, c) <= 2)
    .sort((a, b) => distance(first, a) - distance(first, b));
  if (near.length === 0) return undefined;
  return `unknown command '${first}' (did you mean '${near[0]}'?)`;
}
