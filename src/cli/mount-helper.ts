#!/usr/bin/env node
/**
 * `mount.fuse.unionfs-ts`: the helper mount(8) runs for `mount -t fuse.unionfs-ts SRC MNT -o OPTS`.
 *
 * Invariant: it only translates mount(8)'s calling convention (SRC MNT [-sfnv] [-o OPTS] [-t TYPE]) into
 * `unionfs-ts mount SRC MNT -o OPTS`; SRC is a branch list, or only a name when OPTS has lowerdir=.
 */
import { main } from "./main";

export function helperArgs(argv: readonly string[]): string[] {
  const positionals: string[] = [];
  const options: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "-o" || a === "-t") {
      if (a === "-o" && argv[i + 1] !== undefined) options.push("-o", argv[i + 1] as string);
      i++;
    } else if (a.startsWith("-o") && a.length > 2) {
      options.push("-o", a.slice(2));
    } else if (!a.startsWith("-")) {
      positionals.push(a);
    }
  }
  return ["mount", ...positionals, ...options];
}

if (require.main === module) {
  main(helperArgs(process.argv.slice(2))).then((code) => (process.exitCode = code));
}
