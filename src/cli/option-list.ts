/**
 * Splitting a `-o` option list: its own module (no imports) so that the shared-mount client can read
 * the options without loading the parser of their values.
 *
 * Invariants: empty items are dropped (engines pass `a,,b` and trailing commas); commas inside double
 * quotes do not split; an unbalanced quote is an error.
 */

/** Splits `a=1,b="x,y",,c` into ["a=1", 'b="x,y"', "c"]; `unbalanced` makes the error for a lone quote. */
export function splitOptionItems(list: string, unbalanced: (list: string) => Error): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of list) {
    if (ch === '"') quoted = !quoted;
    if (ch === "," && !quoted) {
      if (cur.length > 0) out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (quoted) throw unbalanced(list);
  if (cur.length > 0) out.push(cur);
  return out;
}
