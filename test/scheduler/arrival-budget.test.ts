import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ArrivalBudget } from "../../src/scheduler/arrival-budget.js";

describe("ArrivalBudget", () => {
  it("allows `limit` requests at once, then none until one has ended and a window has passed", () => {
    const b = new ArrivalBudget(3, 1000);
    expect([b.tryAcquire(0), b.tryAcquire(0), b.tryAcquire(0)]).toEqual([true, true, true]);
    expect(b.tryAcquire(0)).toBe(false);
    // All in flight: the earliest a slot can free is a window from now.
    expect(b.nextFreeAt(500)).toBe(1500);
    b.release(600);
    expect(b.nextFreeAt(700)).toBe(1600);
    expect(b.tryAcquire(1599)).toBe(false);
    expect(b.tryAcquire(1600)).toBe(true);
  });

  it("a request that ended late holds its slot a window past its end, not past its send", () => {
    const b = new ArrivalBudget(1, 1000);
    expect(b.tryAcquire(0)).toBe(true);
    // Sent at 0 but, stuck behind a stalled event loop, it may have arrived as late as 900.
    b.release(900);
    expect(b.tryAcquire(1000)).toBe(false);
    expect(b.nextFreeAt(1000)).toBe(1900);
    expect(b.tryAcquire(1900)).toBe(true);
  });

  it("never lets more than `limit` possible arrivals into any window, whatever the timings", () => {
    // A request may arrive anywhere between its send and its end: an adversary picks each arrival,
    // so a window [t, t + 1000) can hold every request whose span meets it.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 1500 })), {
          minLength: 1,
          maxLength: 60,
        }),
        (limit, steps) => {
          const b = new ArrivalBudget(limit, 1000);
          const spans: Array<[number, number]> = [];
          let open: Array<[number, number]> = [];
          let now = 0;
          for (const [gap, duration] of steps) {
            now += gap;
            for (const [, end] of open.filter(([, e]) => e <= now).sort((x, y) => x[1] - y[1]))
              b.release(end);
            open = open.filter(([, e]) => e > now);
            if (b.tryAcquire(now)) {
              open.push([now, now + duration]);
              spans.push([now, now + duration]);
            }
          }
          const starts = spans.flatMap(([sent, end]) => [sent, end, sent - 999]);
          for (const t of starts) {
            const meeting = spans.filter(([sent, end]) => sent < t + 1000 && end >= t).length;
            expect(meeting).toBeLessThanOrEqual(limit);
          }
        },
      ),
    );
  });

  it("is idle, as a new budget, only with nothing in flight and nothing ended within the window", () => {
    const b = new ArrivalBudget(2, 1000);
    expect(b.isIdle(0)).toBe(true);
    expect(b.tryAcquire(0)).toBe(true);
    expect(b.isIdle(10)).toBe(false);
    b.release(100);
    expect(b.isIdle(1099)).toBe(false);
    expect(b.isIdle(1100)).toBe(true);
  });

  it("refuses a limit or window that is not a positive number", () => {
    expect(() => new ArrivalBudget(0)).toThrow(RangeError);
    expect(() => new ArrivalBudget(1.5)).toThrow(RangeError);
    expect(() => new ArrivalBudget(1, 0)).toThrow(RangeError);
  });
});
