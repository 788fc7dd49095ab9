/**
 * Data-integrity soak: one seeded sequence of random operations (writes at random offsets, appends,
 * truncates, renames, unlinks, creates, hard links, mkdir/rmdir) applied to a plain directory and to a
 * union over the same lower tree, compared after every step: same outcome (or same errno), same bytes
 * in the file touched, and every few steps the same whole view. Bounded in steps and time; the lower
 * layer must be unchanged at the end. Reproduce a failure with SOAK_SEED=<seed printed in the title>.
 */
import { prng } from "../helpers/prng";
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { diffSnapshots, snapshotTree } from "../helpers/snapshot";
import { useCleanup } from "../helpers/unionfs";

const SEED = Number(process.env.SOAK_SEED ?? 20261122);
const STEPS = Number(process.env.SOAK_STEPS ?? 1200);
const TIME_LIMIT_MS = 60_000;
const SNAPSHOT_EVERY = 100;

type Op = { what: string; apply: (root: string) => Promise<string>; touched: string[] };

/** Outcome of an async call as "ok…" or the error code, so both targets can be compared. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    const v = await p;
    return typeof v === "string" ? `ok ${v}` : "ok";
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

function generator(rand: () => number): () => Op {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const dirs = ["", "d0", "d1", "d0/e"];
  const name = (): string => path.join(pick(dirs), `f${Math.floor(rand() * 12)}`);
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
  return () => {
    const r = rand();
    const a = name();
    if (r < 0.25) {
      const off = Math.floor(rand() * 200_000);
      const data = bytes(1 + Math.floor(rand() * 9000));
      return {
        what: `pwrite ${a} @${off} +${data.length}`,
        touched: [a],
        apply: (root) =>
          outcome(
            (async () => {
              const fh = await fsp.open(path.join(root, a), "r+");
              try {
                await fh.write(data, 0, data.length, off);
              } finally {
                await fh.close();
              }
            })(),
          ),
      };
    }
    if (r < 0.35) {
      const data = bytes(1 + Math.floor(rand() * 5000));
      return {
        what: `append ${a}`,
        touched: [a],
        apply: (root) => outcome(fsp.appendFile(path.join(root, a), data)),
      };
    }
    if (r < 0.45) {
      const size = Math.floor(rand() * 150_000);
      return {
        what: `truncate ${a} ${size}`,
        touched: [a],
        apply: (root) => outcome(fsp.truncate(path.join(root, a), size)),
      };
    }
    if (r < 0.55) {
      const b = name();
      return {
        what: `rename ${a} ${b}`,
        touched: [a, b],
        apply: (root) => outcome(fsp.rename(path.join(root, a), path.join(root, b))),
      };
    }
    if (r < 0.63)
      return { what: `unlink ${a}`, touched: [a], apply: (root) => outcome(fsp.unlink(path.join(root, a))) };
    if (r < 0.73) {
      const data = bytes(Math.floor(rand() * 3000));
      return {
        what: `create ${a}`,
        touched: [a],
        apply: (root) => outcome(fsp.writeFile(path.join(root, a), data, { flag: "wx" })),
      };
    }
    if (r < 0.8) {
      const b = name();
      return {
        what: `link ${a} ${b}`,
        touched: [a, b],
        apply: (root) => outcome(fsp.link(path.join(root, a), path.join(root, b))),
      };
    }
    if (r < 0.85) {
      const d = pick(["d1/x", "d0/y", "d2"]);
      return { what: `mkdir ${d}`, touched: [], apply: (root) => outcome(fsp.mkdir(path.join(root, d))) };
    }
    if (r < 0.88) {
      const d = pick(["d1/x", "d0/y", "d2", "d0/e"]);
      return { what: `rmdir ${d}`, touched: [], apply: (root) => outcome(fsp.rmdir(path.join(root, d))) };
    }
    return {
      what: `read ${a}`,
      touched: [a],
      apply: (root) => outcome(fsp.readFile(path.join(root, a)).then((b) => b.toString("base64"))),
    };
  };
}

async function contents(root: string, rel: string): Promise<string> {
  return outcome(fsp.readFile(path.join(root, rel)).then((b) => b.toString("base64")));
}

describe(`soak: random operations on a union and on a plain directory (SOAK_SEED=${SEED})`, function () {
  this.timeout(TIME_LIMIT_MS + 60_000);
  const c = useCleanup();

  it(`stays identical for up to ${STEPS} steps, and the lower layer is untouched`, async () => {
    const rand = prng(SEED);
    const root = c.tempDir("soak");
    const lower = path.join(root, "lower");
    const plain = path.join(root, "plain");
    for (const d of ["", "d0", "d1", "d0/e"]) {
      fs.mkdirSync(path.join(lower, d), { recursive: true });
      for (let i = 0; i < 12; i += 2) {
        const data = Buffer.alloc(Math.floor(rand() * 100_000), i + 1);
        fs.writeFileSync(path.join(lower, d, `f${i}`), data);
      }
    }
    fs.cpSync(lower, plain, { recursive: true });
    const lowerBefore = await snapshotTree(lower, { exact: true });
    const [upper, mnt] = ["upper", "mnt"].map((d) => {
      fs.mkdirSync(path.join(root, d));
      return path.join(root, d);
    }) as [string, string];
    await c.union(`${upper}:${lower}`, mnt);

    const next = generator(rand);
    const started = Date.now();
    let steps = 0;
    for (; steps < STEPS && Date.now() - started < TIME_LIMIT_MS; steps++) {
      const op = next();
      const want = await op.apply(plain);
      const got = await op.apply(mnt);
      assert.equal(got, want, `step ${steps}: ${op.what}`);
      for (const rel of op.touched) {
        assert.equal(
          await contents(mnt, rel),
          await contents(plain, rel),
          `step ${steps}: ${op.what}: ${rel}`,
        );
      }
      if (steps % SNAPSHOT_EVERY === SNAPSHOT_EVERY - 1) {
        assert.deepEqual(
          diffSnapshots(await snapshotTree(plain), await snapshotTree(mnt)),
          [],
          `step ${steps}`,
        );
      }
    }
    assert.deepEqual(diffSnapshots(await snapshotTree(plain), await snapshotTree(mnt)), [], "at the end");
    assert.deepEqual(diffSnapshots(lowerBefore, await snapshotTree(lower, { exact: true })), []);
    assert.ok(steps >= 200, `only ${steps} steps ran within the time limit`);
  });
});
