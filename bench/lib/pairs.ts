import { log } from "./figure.js";
import { round, type Spread, spread } from "./stats.js";

export interface PairResult {
  baseline: Spread;
  subject: Spread;
  /** subject ÷ baseline of each repetition: the noise of a shared machine cancels within a pair. */
  ratio: Spread;
}

/**
 * Measures baseline and subject back to back `reps` times, alternating which goes first so that
 * a drift in the machine's load does not favour either; one unrecorded warm-up pair first.
 */
export async function measurePairs(
  label: string,
  reps: number,
  baseline: () => Promise<number>,
  subject: () => Promise<number>,
  /** Runs before each pair (the warm-up pair included): e.g. a fresh outbox for both to send. */
  setup: () => Promise<void> = async () => {},
): Promise<PairResult> {
  await setup();
  await baseline();
  await subject();
  const b: number[] = [];
  const s: number[] = [];
  for (let rep = 0; rep < reps; rep += 1) {
    let bv: number;
    let sv: number;
    await setup();
    if (rep % 2 === 0) {
      bv = await baseline();
      sv = await subject();
    } else {
      sv = await subject();
      bv = await baseline();
    }
    b.push(bv);
    s.push(sv);
    log(
      `${label} #${rep + 1}: baseline ${round(bv, 1)}, taskhook ${round(sv, 1)}, ratio ${round(sv / bv, 3)}`,
    );
  }
  return {
    baseline: spread(b),
    subject: spread(s),
    ratio: spread(s.map((v, i) => v / (b[i] ?? 1))),
  };
}
