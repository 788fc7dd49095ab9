/** A read-only layer's compact listing (namelist.ts): membership, types, order, duplicates. */
import { strict as assert } from "node:assert";
import { NameList } from "../../../src/unionfs/namelist";

const REG = 0o100000;
const DIR = 0o040000;
const LNK = 0o120000;

describe("unionfs/namelist", () => {
  it("answers has() for every listed name and no other, whatever the listing's order", () => {
    const names = ["b", "a", ".wh.c", "Z", "é", "a-b", "ab", "", "\u00ff\u0100"].filter((n) => n !== "");
    const list = NameList.of(names.map((name) => ({ name, type: REG })));
    assert.equal(list.size, names.length);
    for (const n of names) assert.equal(list.has(n), true, n);
    for (const n of ["c", "A", "a-", "abc", ".wh.", "zz", "e"]) assert.equal(list.has(n), false, n);
  });

  it("keeps each name's type, gives entries in name order, and a name listed twice once", () => {
    const list = NameList.of([
      { name: "link", type: LNK },
      { name: "dir", type: DIR },
      { name: "file", type: REG },
      { name: "dir", type: DIR },
      { name: "odd", type: 0 },
    ]);
    assert.deepEqual(list.entries(), [
      { name: "dir", type: DIR },
      { name: "file", type: REG },
      { name: "link", type: LNK },
      { name: "odd", type: 0 },
    ]);
    assert.deepEqual([...list.keys()], ["dir", "file", "link", "odd"]);
  });

  it("names its directories, and the names of unknown type that may be ones", () => {
    const list = NameList.of([
      { name: "link", type: LNK },
      { name: "dir", type: DIR },
      { name: "file", type: REG },
      { name: "odd", type: 0 },
    ]);
    assert.deepEqual(list.directories(), ["dir", "odd"]);
  });

  it("is empty for an empty listing", () => {
    const list = NameList.of([]);
    assert.equal(list.size, 0);
    assert.equal(list.has("x"), false);
    assert.deepEqual(list.entries(), []);
  });
});
