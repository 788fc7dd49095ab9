/**
 * src/layer/tar/pax.ts and header.ts: the one decoder of tar headers and PAX records that the layer
 * scan and image import share — binary-safe records, encode/decode round trip, libarchive xattrs,
 * base-256 numbers, neutral errors.
 */
import { strict as assert } from "node:assert";
import { checksumOk, parseHeader, TarHeaderError } from "../../../../src/layer/tar/header";
import {
  encodeRecord,
  encodeRecords,
  Extended,
  parsePax,
  paxTimeNs,
  paxXattrs,
} from "../../../../src/layer/tar/pax";
import { headerBlock } from "../../../helpers/tar";

describe("tar: PAX records and header blocks", () => {
  it("records: length counts itself, values are bytes (NUL and newline too), decode inverts encode", () => {
    assert.equal(encodeRecord("path", Buffer.from("abc")).toString(), "12 path=abc\n");
    assert.equal(encodeRecord("k", Buffer.alloc(2)).length, 7); // "7 k=\0\0\n"
    const cap = [1, 0, 0, 2, 0, 0x20, 0, 0, 0xff, 0x0a, 0x80];
    const body = encodeRecords([
      ["SCHILY.xattr.security.capability", Buffer.from(cap)],
      ["path", Buffer.from("ünï €/x".repeat(20))],
    ]);
    const back = parsePax(Buffer.concat([body, Buffer.alloc(100)]));
    assert.deepEqual([...back.keys()], ["SCHILY.xattr.security.capability", "path"]);
    assert.deepEqual([...(paxXattrs(back).get("security.capability") ?? [])], cap);
    assert.equal(Buffer.from(back.get("path") ?? "", "latin1").toString(), "ünï €/x".repeat(20));
    assert.throws(() => parsePax(Buffer.from("99 path=x\n")), TarHeaderError);
    assert.throws(() => parsePax(Buffer.from("9 pathx\n\n")), TarHeaderError);
  });

  it("reads libarchive's xattr form too", () => {
    const records = new Map([
      ["LIBARCHIVE.xattr.user.a%20b", Buffer.from([0, 1, 2]).toString("base64")],
      ["SCHILY.xattr.user.c", "d"],
    ]);
    assert.deepEqual(
      [...paxXattrs(records)].map(([k, v]) => [k, [...v]]),
      [
        ["user.a b", [0, 1, 2]],
        ["user.c", [0x64]],
      ],
    );
  });

  it("GNU long names and PAX records amend the next member only; global ones stay; later wins", () => {
    const ext = new Extended();
    ext.add("g", encodeRecords([["uid", Buffer.from("7")]]));
    ext.add("x", encodeRecords([["path", Buffer.from("p")]]));
    ext.add("L", Buffer.from("long\0\0"));
    assert.ok(ext.pending);
    assert.deepEqual(
      [...ext.take()],
      [
        ["uid", "7"],
        ["path", "long"],
      ],
    );
    assert.ok(!ext.pending);
    assert.deepEqual([...ext.take()], [["uid", "7"]]);
    assert.equal(paxTimeNs("-1.5", "mtime"), -1_500_000_000n);
  });

  it("header: base-256 numbers (times may be negative, sizes not), ustar prefix, checksum", () => {
    const block = headerBlock({ name: "f", data: "" }, 0);
    assert.ok(checksumOk(block));
    assert.equal(parseHeader(block).name, "f");
    block.fill(0, 136, 148);
    block[136] = 0xff; // base-256 -1
    block.fill(0xff, 137, 148);
    assert.equal(parseHeader(block).mtime, -1);
    assert.ok(!checksumOk(block));
    block.copy(block, 124, 136, 148); // size -1
    assert.throws(() => parseHeader(block), /negative size field/);
    block.write("12x", 124, "latin1");
    assert.throws(
      () => parseHeader(block),
      (e: Error) => e instanceof TarHeaderError && /bad size/.test(e.message),
    );
  });
});
