import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type BackoffOptions,
  backoffDelay,
  parseRetryAfter,
  RETRY_AFTER_CAP_MS,
} from "../../src/domain/backoff.js";

const opts: BackoffOptions = { baseMs: 2_000, capMs: 300_000, floorMs: 5_000 };

describe("backoffDelay", () => {
  it.each([
    ["a short draw is still never below the per-task minimum", 1, 0.5, 5_000],
    ["the ceiling doubles with each failure in a row", 4, 0.5, 8_000],
    ["full jitter can draw the bottom of the range (then the minimum)", 4, 0, 5_000],
    ["full jitter can draw just under the ceiling", 4, 0.999, 15_984],
    ["the ceiling stops at the cap (5 minutes)", 20, 0.5, 150_000],
    ["thousands of failures in a row neither overflow nor pass the cap", 5_000, 0.999, 299_700],
    ["zero failures are read as the first", 0, 0.999, 5_000],
    ["a negative count is read as the first", -3, 0.999, 5_000],
    ["a NaN draw from the random source waits the whole ceiling", 4, Number.NaN, 16_000],
  ])("%s", (_name, failures, draw, expected) => {
    expect(backoffDelay(failures, opts, () => draw)).toBe(expected);
  });

  it("a floor above the cap wins: a retry is still a poll", () => {
    expect(backoffDelay(30, { baseMs: 1_000, capMs: 3_000, floorMs: 5_000 }, () => 0.999)).toBe(
      5_000,
    );
  });

  it("always between the floor and the capped exponential ceiling", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 1, max: 600_000 }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (n, baseMs, capMs, floorMs, draw) => {
          const d = backoffDelay(n, { baseMs, capMs, floorMs }, () => draw);
          const ceiling = Math.min(capMs, baseMs * 2 ** (n - 1));
          return d >= floorMs && d <= Math.max(floorMs, ceiling);
        },
      ),
    );
  });

  it("after an outage, retries spread over the whole range instead of returning as one wave", () => {
    let seed = 1;
    const random = () => {
      seed = (seed * 16_807) % 2_147_483_647;
      return seed / 2_147_483_647;
    };
    const delays = Array.from({ length: 1_000 }, () => backoffDelay(12, opts, random));
    expect(Math.min(...delays)).toBeLessThan(30_000);
    expect(Math.max(...delays)).toBeGreaterThan(270_000);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-01-04T12:00:00.000Z");

  it.each<[string, string | string[] | undefined, number | null]>([
    ["no header: null (the caller backs off exponentially)", undefined, null],
    ["an empty header: null", "", null],
    ["words: null", "soon", null],
    ["a number with trailing garbage: null", "12abc", null],
    ["a fraction is not delay-seconds: null", "1.5", null],
    ["seconds", "120", 120_000],
    ["seconds with surrounding spaces", " 120 ", 120_000],
    ["zero seconds: now", "0", 0],
    ["negative seconds: now", "-5", 0],
    ["a day: capped at an hour", "86400", RETRY_AFTER_CAP_MS],
    ["an absurd number: capped at an hour", "99999999999999999999999", RETRY_AFTER_CAP_MS],
    ["an IMF-fixdate", "Sun, 04 Jan 2026 12:01:30 GMT", 90_000],
    ["an obsolete RFC 850 date", "Sunday, 04-Jan-26 12:01:30 GMT", 90_000],
    ["an obsolete asctime date, read as GMT", "Sun Jan  4 12:01:30 2026", 90_000],
    ["a date in the past: now", "Sun, 04 Jan 2026 11:00:00 GMT", 0],
    [
      "a date two days away: capped at an hour",
      "Tue, 06 Jan 2026 12:00:00 GMT",
      RETRY_AFTER_CAP_MS,
    ],
    ["a date with an impossible time: null", "Sun, 04 Jan 2026 25:00:00 GMT", null],
    ["a date in another zone is not an HTTP date: null", "Sun, 04 Jan 2026 12:01:30 +0100", null],
    ["repeated headers: the longest wait wins", ["30", "120"], 120_000],
    ["repeated headers: garbage among them is skipped", ["later", "30"], 30_000],
    ["repeated headers, all garbage: null", ["later", "x"], null],
    ["an empty list: null", [], null],
  ])("%s", (_name, header, expected) => {
    expect(parseRetryAfter(header, now)).toBe(expected);
  });
});
