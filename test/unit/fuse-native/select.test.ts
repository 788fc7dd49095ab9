/**
 * Choosing the transport (auto/kernel/fuse-native) and the one-line error when fuse-native cannot load.
 */
import { strict as assert } from "node:assert";
import { describeLoadError, unavailableError } from "../../../src/fuse/native/binding";
import { chooseTransportName, type Probe } from "../../../src/fuse/native/select";
import { UsageError } from "../../../src/errors";

function probe(
  root: boolean,
  devFuse: string | undefined,
  native: Error | undefined,
): Probe & { loads: number } {
  const p = {
    loads: 0,
    isRoot: () => root,
    devFuseError: () => devFuse,
    loadNative: () => {
      p.loads++;
      if (native) throw native;
    },
  };
  return p;
}

const missing = unavailableError(
  Object.assign(new Error("Cannot find module 'fuse-native'\nRequire stack: ..."), {
    code: "MODULE_NOT_FOUND",
  }),
);

describe("transport choice", () => {
  it("auto picks the kernel transport for root when /dev/fuse opens, without loading the binding", () => {
    const p = probe(true, undefined, missing);
    assert.deepEqual(chooseTransportName("auto", p), {
      name: "kernel",
      reason: "auto: root and /dev/fuse opens",
    });
    assert.equal(p.loads, 0);
  });

  it("auto picks fuse-native when not root, or when /dev/fuse does not open", () => {
    assert.deepEqual(chooseTransportName("auto", probe(false, undefined, undefined)), {
      name: "fuse-native",
      reason: "auto: not root",
    });
    assert.deepEqual(chooseTransportName("auto", probe(true, "EACCES", undefined)), {
      name: "fuse-native",
      reason: "auto: /dev/fuse does not open (EACCES)",
    });
  });

  it("an explicit name is taken as is; fuse-native must load", () => {
    assert.equal(chooseTransportName("kernel", probe(false, "EACCES", missing)).name, "kernel");
    assert.equal(chooseTransportName("fuse-native", probe(true, undefined, undefined)).name, "fuse-native");
    assert.throws(() => chooseTransportName("fuse-native", probe(true, undefined, missing)), missing);
  });

  it("an unknown name is a usage error naming the choices", () => {
    assert.throws(
      () => chooseTransportName("fuse3", probe(true, undefined, undefined)),
      (err: unknown) =>
        err instanceof UsageError &&
        /unknown transport 'fuse3' \(expected auto, kernel, fuse-native\)/.test(err.message),
    );
  });

  it("auto with neither transport usable says both reasons on one line", () => {
    assert.throws(
      () => chooseTransportName("auto", probe(false, undefined, unavailableError(new Error("x")))),
      (err: Error) =>
        /^no transport can serve: the kernel one needs root and \/dev\/fuse \(not root\); the fuse-native transport is unavailable \(x\): install libfuse2/.test(
          err.message,
        ) && !err.message.includes("\n"),
    );
  });
});

describe("fuse-native unavailable", () => {
  it("is one line with code ENOPKG that says how to get it", () => {
    assert.equal((missing as { code?: string }).code, "ENOPKG");
    assert.equal(
      missing.message,
      "the fuse-native transport is unavailable (the optional package fuse-native is not installed): " +
        "install libfuse2 (apt-get install libfuse2) and fuse-native (npm install fuse-native)",
    );
  });

  it("names a missing shared library", () => {
    const dl = new Error(
      "libfuse.so.2: cannot open shared object file: No such file or directory\n    at Module._extensions..node",
    );
    assert.equal(describeLoadError(dl), "libfuse.so.2 is missing");
    assert.equal(describeLoadError(new Error("first\nsecond")), "first");
  });
});
