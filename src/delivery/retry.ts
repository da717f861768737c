/** ±10 %: spreads retries of many deliveries that failed together, so they do not return together. */
export const JITTER_RATIO = 0.1;

/** A receiver asking for more than a day is not allowed to park a delivery beyond the schedule's own scale. */
export const MAX_RETRY_AFTER_MS = 24 * 60 * 60 * 1000;

export interface NextAttemptOptions {
  /** From a 429/503 `Retry-After`, already converted to milliseconds. */
  retryAfterMs?: number | null;
  /** In [0, 1), like Math.random; injected by tests. */
  random?: () => number;
}

/**
 * The delay before the next attempt, counted from the previous one; null once the schedule is
 * spent (the delivery has failed for good — a Retry-After does not buy an extra attempt).
 * `schedule[i]` is the delay before attempt i+1, so `schedule[0]` is the first attempt's.
 */
export function nextAttemptDelay(
  schedule: readonly number[],
  attemptsMade: number,
  opts: NextAttemptOptions = {},
): number | null {
  if (!Number.isSafeInteger(attemptsMade) || attemptsMade < 0) {
    throw new RangeError(`attemptsMade must be a non-negative integer, got ${attemptsMade}`);
  }
  const base = schedule[attemptsMade];
  if (base === undefined) return null;

  const random = opts.random ?? Math.random;
  const jitter = (random() * 2 - 1) * JITTER_RATIO;
  const delay = Math.max(0, Math.round(base * (1 + jitter)));

  const retryAfter = opts.retryAfterMs;
  if (retryAfter === undefined || retryAfter === null || !(retryAfter > 0)) return delay;
  return Math.max(delay, Math.ceil(Math.min(retryAfter, MAX_RETRY_AFTER_MS)));
}
