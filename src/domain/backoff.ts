/**
 * How long to leave a task (or an API key) alone after the upstream misbehaved.
 *
 * Full jitter (a uniform draw below the exponential ceiling) rather than "ceiling ± a
 * little": after an upstream outage thousands of tasks fail together, and only a draw
 * over the whole range spreads their retries instead of returning as one wave.
 */

export interface BackoffOptions {
  /** Ceiling of the first retry. */
  baseMs: number;
  /** The ceiling never grows past this (the spec's 5 minutes: 300_000). */
  capMs: number;
  /** The per-task minimum poll interval: a retry is still a poll. */
  floorMs: number;
}

export const RETRY_AFTER_CAP_MS = 3_600_000;

/** Delay before the next attempt after `consecutiveFailures` failures in a row (1 = the first). */
export function backoffDelay(
  consecutiveFailures: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const n = Number.isFinite(consecutiveFailures) ? Math.max(1, Math.floor(consecutiveFailures)) : 1;
  // 2 ** n overflows to Infinity for huge n, which `Math.min` turns into the cap.
  const ceiling = Math.min(opts.capMs, opts.baseMs * 2 ** (n - 1));
  const draw = random();
  const unit = Number.isFinite(draw) ? Math.min(1, Math.max(0, draw)) : 1;
  return Math.max(opts.floorMs, Math.floor(unit * ceiling));
}

const DELAY_SECONDS = /^-?\d+$/;
// RFC 9110 §5.6.7: IMF-fixdate, plus the obsolete RFC 850 and asctime forms recipients must accept.
const IMF_FIXDATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850_DATE = /^[A-Z][a-z]+, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/**
 * Milliseconds to wait according to a `Retry-After` header, or null when it is absent or
 * unreadable (the caller then backs off exponentially). A past date or negative number
 * means "now" (0); anything beyond an hour is capped there, so one bad header cannot
 * silence an API key for days. Repeated headers: the longest wait wins, since obeying a
 * shorter one would only earn another 429.
 */
export function parseRetryAfter(header: string | string[] | undefined, now: number): number | null {
  if (header === undefined) return null;
  const values = typeof header === "string" ? [header] : header;
  let longest: number | null = null;
  for (const value of values) {
    const ms = parseOne(value.trim(), now);
    if (ms !== null && (longest === null || ms > longest)) longest = ms;
  }
  return longest;
}

function parseOne(value: string, now: number): number | null {
  let ms: number;
  if (DELAY_SECONDS.test(value)) {
    ms = Number(value) * 1000;
  } else if (IMF_FIXDATE.test(value) || RFC850_DATE.test(value)) {
    ms = Date.parse(value) - now;
  } else if (ASCTIME_DATE.test(value)) {
    // asctime carries no zone; HTTP dates are always GMT, but Date.parse would read it as local.
    ms = Date.parse(`${value} GMT`) - now;
  } else {
    return null;
  }
  if (Number.isNaN(ms)) return null;
  return Math.min(RETRY_AFTER_CAP_MS, Math.max(0, ms));
}
