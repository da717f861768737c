import { describe, expect, it } from "vitest";
import { MAX_RETRY_AFTER_MS, nextAttemptDelay } from "../../src/delivery/retry.js";
import { parseDurationList } from "../../src/domain/durations.js";

const SCHEDULE = parseDurationList("0s,5s,5m,30m,2h,5h,10h,14h,20h,24h");
const MIDDLE = () => 0.5; // no jitter
const LOWEST = () => 0; // −10 %
const HIGHEST = () => 0.999_999; // just under +10 %
const HOUR = 3_600_000;

describe("nextAttemptDelay", () => {
  it.each([
    { attemptsMade: 0, delay: 0 },
    { attemptsMade: 1, delay: 5_000 },
    { attemptsMade: 2, delay: 300_000 },
    { attemptsMade: 3, delay: 1_800_000 },
    { attemptsMade: 9, delay: 24 * HOUR },
  ])(
    "after $attemptsMade attempts waits schedule[$attemptsMade] = $delay ms",
    ({ attemptsMade, delay }) => {
      expect(nextAttemptDelay(SCHEDULE, attemptsMade, { random: MIDDLE })).toBe(delay);
    },
  );

  it.each([
    { case: "the last scheduled attempt", attemptsMade: SCHEDULE.length },
    { case: "beyond the schedule", attemptsMade: SCHEDULE.length + 3 },
  ])("gives up (null) after $case", ({ attemptsMade }) => {
    expect(nextAttemptDelay(SCHEDULE, attemptsMade, { random: MIDDLE })).toBeNull();
  });

  it("gives up at once on an empty schedule", () => {
    expect(nextAttemptDelay([], 0)).toBeNull();
  });

  it.each([
    { case: "lowest random shortens by 10 %", random: LOWEST, delay: 4_500 },
    { case: "highest random lengthens by (just under) 10 %", random: HIGHEST, delay: 5_500 },
    { case: "random 0.25 shortens by 5 %", random: () => 0.25, delay: 4_750 },
    { case: "random 0.75 lengthens by 5 %", random: () => 0.75, delay: 5_250 },
  ])("jitters within ±10 %: $case", ({ random, delay }) => {
    expect(nextAttemptDelay(SCHEDULE, 1, { random })).toBe(delay);
  });

  it.each([LOWEST, MIDDLE, HIGHEST])("keeps a zero delay at zero whatever the jitter", (random) => {
    expect(nextAttemptDelay(SCHEDULE, 0, { random })).toBe(0);
  });

  it("returns whole milliseconds", () => {
    expect(nextAttemptDelay([0, 7], 1, { random: () => 0.123 })).toSatisfy(Number.isInteger);
  });

  it("stays within ±10 % with the default random source", () => {
    for (let i = 0; i < 200; i++) {
      const delay = nextAttemptDelay(SCHEDULE, 2) ?? Number.NaN;
      expect(delay).toBeGreaterThanOrEqual(270_000);
      expect(delay).toBeLessThanOrEqual(330_000);
    }
  });

  it.each([
    { case: "lengthens a shorter delay", attemptsMade: 1, retryAfterMs: 60_000, delay: 60_000 },
    {
      case: "lengthens even the jittered-down delay",
      attemptsMade: 2,
      retryAfterMs: 280_000,
      delay: 280_000,
    },
    {
      case: "never shortens a longer delay",
      attemptsMade: 3,
      retryAfterMs: 5_000,
      delay: 1_620_000,
    },
    {
      case: "is capped at 24 h",
      attemptsMade: 1,
      retryAfterMs: 7 * 24 * HOUR,
      delay: MAX_RETRY_AFTER_MS,
    },
    { case: "is ignored when null", attemptsMade: 1, retryAfterMs: null, delay: 4_500 },
    { case: "is ignored when zero", attemptsMade: 1, retryAfterMs: 0, delay: 4_500 },
    { case: "is ignored when negative", attemptsMade: 1, retryAfterMs: -10_000, delay: 4_500 },
    { case: "is ignored when NaN", attemptsMade: 1, retryAfterMs: Number.NaN, delay: 4_500 },
    {
      case: "rounds a fractional value up",
      attemptsMade: 1,
      retryAfterMs: 60_000.2,
      delay: 60_001,
    },
  ])("Retry-After $case", ({ attemptsMade, retryAfterMs, delay }) => {
    expect(nextAttemptDelay(SCHEDULE, attemptsMade, { retryAfterMs, random: LOWEST })).toBe(delay);
  });

  it("Retry-After does not buy an attempt past the end of the schedule", () => {
    expect(
      nextAttemptDelay(SCHEDULE, SCHEDULE.length, { retryAfterMs: 60_000, random: MIDDLE }),
    ).toBeNull();
  });

  it.each([-1, 1.5, Number.NaN])("refuses attemptsMade = %s", (attemptsMade) => {
    expect(() => nextAttemptDelay(SCHEDULE, attemptsMade)).toThrow(RangeError);
  });
});
