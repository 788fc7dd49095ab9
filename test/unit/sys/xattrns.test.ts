import { strict as assert } from "node:assert";
import { hasSysAdmin, isInitialUserNs, privateXattrNamespace } from "../../../src/sys/xattrns";

describe("private xattr namespace (sys/xattrns)", () => {
  it("reads CAP_SYS_ADMIN (bit 21) from CapEff", () => {
    assert.equal(hasSysAdmin("Name:\tx\nCapEff:\t000001ffffffffff\n"), true);
    assert.equal(hasSysAdmin("CapEff:\t0000000000200000\n"), true);
    assert.equal(hasSysAdmin("CapEff:\t00000000001fffff\nCapBnd:\t000001ffffffffff\n"), false);
    assert.equal(hasSysAdmin("CapEff:\t0000000000000000\n"), false);
    assert.equal(hasSysAdmin("Name:\tx\n"), false);
  });

  it("knows the initial user namespace's uid_map from a user namespace's", () => {
    assert.equal(isInitialUserNs("         0          0 4294967295\n"), true);
    assert.equal(isInitialUserNs("         0       1000          1\n"), false);
    assert.equal(isInitialUserNs("         0          0          1\n"), false);
    assert.equal(
      isInitialUserNs("         0     100000      65536\n         1       1000          1\n"),
      false,
    );
  });

  it("picks trusted for root in the initial user namespace", function () {
    if (process.getuid?.() !== 0) this.skip();
    assert.equal(privateXattrNamespace(), "trusted");
  });
});
