import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RateWindow } from "../../src/scheduler/rate-window.js";

/** Sends at the given times; returns the ones that were allowed. */
function run(window: RateWindow, attempts: number[]): number[] {
  return attempts.filter((t) => window.tryAcquire(t));
}

/** The most sends found in any half-open window [t, t + windowMs). */
function busiestWindow(sends: number[], windowMs: number): number {
  let most = 0;
  let start = 0;
  // A busiest window can always be slid to begin at a send.
  for (let end = 0; end < sends.length; end++) {
    while ((sends[end] ?? 0) - (sends[start] ?? 0) >= windowMs) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

describe("RateWindow", () => {
  it("the whole budget can go out at once, and not one more", () => {
    const w = new RateWindow(5);
    expect(run(w, [0, 0, 0, 0, 0, 0, 0])).toEqual([0, 0, 0, 0, 0]);
  });

  it("a burst at the end of one second and the start of the next is still N (a token bucket would allow 2N)", () => {
    const w = new RateWindow(10);
    expect(run(w, Array(10).fill(999))).toHaveLength(10);
    expect(run(w, [1_000, 1_500, 1_998])).toEqual([]);
    expect(w.nextFreeAt(1_000)).toBe(1_999);
    expect(w.tryAcquire(1_999)).toBe(true);
  });

  it.each([
    ["while under the limit, now", [0, 100], 300, 300],
    [
      "at the limit, when the oldest of the last N sends leaves the window",
      [0, 100, 200],
      300,
      1_000,
    ],
    ["never before now", [0, 100, 200], 5_000, 5_000],
    ["after a slot is reused, the next oldest decides", [0, 100, 200, 1_000], 1_000, 1_100],
    ["a custom window moves the time by its length", [0, 100, 200], 300, 1_050, 1_050],
  ])("nextFreeAt is exact: %s", (_name, sends, at, expected, windowMs = 1_000) => {
    const w = new RateWindow(3, windowMs);
    expect(run(w, sends)).toEqual(sends);
    expect(w.nextFreeAt(at)).toBe(expected);
    if (expected > at) expect(w.tryAcquire(expected - 1)).toBe(false);
    expect(w.tryAcquire(expected)).toBe(true);
  });

  it("a refused attempt records nothing", () => {
    const w = new RateWindow(2);
    run(w, [0, 400]);
    expect(w.tryAcquire(500)).toBe(false);
    expect(w.tryAcquire(900)).toBe(false);
    expect(w.nextFreeAt(900)).toBe(1_000);
    expect(run(w, [1_000, 1_399, 1_400])).toEqual([1_000, 1_400]);
  });

  it.each([
    ["a zero limit", 0, 1_000],
    ["a fractional limit", 1.5, 1_000],
    ["a zero window", 3, 0],
    ["a NaN window", 3, Number.NaN],
  ])("refuses to be built with %s", (_name, limit, windowMs) => {
    expect(() => new RateWindow(limit, windowMs)).toThrow(RangeError);
  });

  const attemptTimes = fc
    .array(fc.integer({ min: 0, max: 400 }), { maxLength: 400 })
    .map((gaps) => gaps.map((_, i) => gaps.slice(0, i + 1).reduce((a, b) => a + b, 0)));

  it("never more than `limit` sends in any window, whatever the attempts", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 2_000 }),
        attemptTimes,
        (limit, windowMs, attempts) => {
          const w = new RateWindow(limit, windowMs);
          const sends: number[] = [];
          for (const t of attempts) {
            const predicted = w.nextFreeAt(t) === t;
            const allowed = w.tryAcquire(t);
            if (allowed !== predicted) return false;
            if (allowed) sends.push(t);
          }
          return busiestWindow(sends, windowMs) <= limit;
        },
      ),
    );
  });

  it("under sustained demand it uses at least 95 % of the budget over 10 s", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 50 }),
        (limit, gaps) => {
          const w = new RateWindow(limit);
          let sent = 0;
          // Demand never lets up: an attempt every few ms (cycling through `gaps`).
          for (let t = 0, i = 0; t < 10_000; t += gaps[i++ % gaps.length] || 1) {
            while (w.tryAcquire(t)) sent++;
          }
          return sent >= 0.95 * limit * 10 && sent <= limit * 10;
        },
      ),
    );
  });

  it("a sender that waits for nextFreeAt gets exactly the budget", () => {
    const w = new RateWindow(50, 1_050);
    let sent = 0;
    for (let t = 0; t < 10_500; t = w.nextFreeAt(t)) {
      expect(w.tryAcquire(t)).toBe(true);
      sent++;
    }
    expect(sent).toBe(500);
  });
});
