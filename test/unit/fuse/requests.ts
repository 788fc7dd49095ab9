/**
 * Builds FUSE request buffers for unit tests, laid out as the kernel sends them (linux/fuse.h 7.38).
 */

export interface ReqOptions {
  nodeid?: number;
  unique?: bigint;
  uid?: number;
  gid?: number;
  pid?: number;
}

/** Little-endian struct builder: u32/u64 fields and NUL-terminated names, in order. */
export class Body {
  private readonly parts: Buffer[] = [];

  u32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n >>> 0);
    this.parts.push(b);
    return this;
  }

  u64(n: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    this.parts.push(b);
    return this;
  }

  name(s: string): this {
    this.parts.push(Buffer.from(`${s}\0`, "latin1"));
    return this;
  }

  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function request(opcode: number, body: Body | Buffer = Buffer.alloc(0), o: ReqOptions = {}): Buffer {
  const payload = body instanceof Body ? body.build() : body;
  const b = Buffer.alloc(40 + payload.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(o.unique ?? 42n, 8);
  b.writeBigUInt64LE(BigInt(o.nodeid ?? 1), 16);
  b.writeUInt32LE(o.uid ?? 1000, 24);
  b.writeUInt32LE(o.gid ?? 100, 28);
  b.writeUInt32LE(o.pid ?? 4242, 32);
  payload.copy(b, 40);
  return b;
}

/** Concatenated reply payload parts. */
export function payload(parts: readonly Buffer[]): Buffer {
  return Buffer.concat(parts);
}
