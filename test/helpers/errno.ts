/** The errno `code` a call throws, for asserting on failures of synchronous calls. */
export function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}
