/**
 * Test support: seeded fuzzing of a decoder (tests/rng.ts). Inputs are
 * random bytes, truncations, bit flips, overwritten, inserted and deleted
 * bytes and splices of captured messages. The contract checked on each:
 *
 * - the decoder never throws: it returns an error value (with a message)
 *   or a value;
 * - a value is a valid message: the encoder takes it without throwing, the
 *   bytes it writes decode to the same value, and writing that again gives
 *   the same bytes.
 *
 * The seed is O7S_FUZZ_SEED when set (a failure prints the one to repeat).
 */
import { assert, assertEquals } from "../../tests/assert.ts";
import { uniform } from "../../tests/rng.ts";
import type { Result } from "../../lib/util/result.ts";
import { hexOf } from "./captures.ts";

export interface FuzzTarget<T> {
  name: string;
  /** captured messages to mutate (at least one) */
  corpus: Uint8Array[];
  decode: (b: Uint8Array) => Result<T>;
  encode: (v: T) => Uint8Array;
  /** inputs to try (default 5000) */
  runs?: number;
}

export interface FuzzStats {
  seed: number;
  runs: number;
  /** inputs that decoded to a value */
  decoded: number;
  /** of those, inputs that were not one of the corpus' messages */
  mutantsDecoded: number;
}

const DEFAULT_SEED = 20261201;

/** The fuzz seed: O7S_FUZZ_SEED, or a fixed default. */
export function fuzzSeed(): number {
  return Number(Deno.env.get("O7S_FUZZ_SEED") ?? DEFAULT_SEED);
}

/** Fuzzes `t.decode` (see the module comment); throws on a broken contract. */
export function fuzzDecoder<T>(t: FuzzTarget<T>): FuzzStats {
  const seed = fuzzSeed();
  const rand = uniform(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const runs = t.runs ?? 5000;
  const originals = new Set(t.corpus.map(hexOf));
  const maxLen = Math.max(...t.corpus.map((c) => c.length));
  const pick = () => t.corpus[int(t.corpus.length)]!.slice();
  let decoded = 0;
  let mutantsDecoded = 0;
  let input = new Uint8Array(0);
  let run = 0;
  try {
    for (; run < runs; run++) {
      switch (run % 7) {
        case 0:
          input = new Uint8Array(int(2 * maxLen + 2)).map(() => int(256));
          break;
        case 1: {
          const c = pick();
          input = c.subarray(0, int(c.length + 1));
          break;
        }
        case 2:
        case 3: {
          input = pick();
          const flips = 1 + int(run % 7 === 2 ? 1 : 4);
          for (let i = 0; i < flips && input.length > 0; i++) {
            const bit = int(input.length * 8);
            input[bit >> 3]! ^= 1 << (bit & 7);
          }
          break;
        }
        case 4:
          input = pick();
          if (input.length > 0) input[int(input.length)] = int(256);
          break;
        case 5: {
          const c = pick();
          const at = int(c.length + 1);
          input = int(2) === 0
            ? new Uint8Array([
              ...c.subarray(0, at),
              int(256),
              ...c.subarray(at),
            ])
            : new Uint8Array([...c.subarray(0, at), ...c.subarray(at + 1)]);
          break;
        }
        default: {
          const a = pick();
          const b = pick();
          const i = int(a.length + 1);
          const j = int(b.length + 1);
          input = new Uint8Array([...a.subarray(0, i), ...b.subarray(j)]);
        }
      }
      const r = t.decode(input);
      if (!r.ok) {
        assert(
          typeof r.error === "string" && r.error !== "",
          "an error without a message",
        );
        continue;
      }
      decoded++;
      if (!originals.has(hexOf(input))) mutantsDecoded++;
      const bytes = t.encode(r.value);
      const again = t.decode(bytes);
      assert(
        again.ok,
        `re-encoded bytes do not decode: ${!again.ok && again.error}`,
      );
      assertEquals(again.value, r.value, "decode(encode(v)) is not v");
      assertEquals(t.encode(again.value), bytes, "encoding is not stable");
    }
  } catch (e) {
    throw new Error(
      `${t.name}: fuzz seed ${seed} (O7S_FUZZ_SEED=${seed} repeats it), run ${run}, input [${
        hexOf(input)
      }]: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
  return { seed, runs, decoded, mutantsDecoded };
}
