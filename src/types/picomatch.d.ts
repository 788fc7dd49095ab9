/** The part of picomatch (v2, which ships no types) that src/image/exclude.ts uses. */
declare module "picomatch" {
  interface PicomatchOptions {
    /** Match names that start with a dot. */
    dot?: boolean;
  }
  function picomatch(glob: string | string[], options?: PicomatchOptions): (path: string) => boolean;
  export = picomatch;
}
