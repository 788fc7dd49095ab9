/**
 * Whiteouts and opaque markers: how a layer says "this name is deleted" or "hide everything below".
 * Reading understands every format in every layer (read.ts); writing uses the one format a mount
 * chose (write.ts).
 */
export * from "./read";
export * from "./write";
