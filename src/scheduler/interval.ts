/**
 * When to poll a task next, from its last healthy answer and the clock.
 *
 * The upstream allows one poll per task every `minMs` and recommends `minMs`–`maxMs`.
 * Most of a task's life is spent far from its end (deep in the queue, early in a long
 * render), where one poll at `maxMs` learns what three at `minMs` would; how late we
 * notice the final status is decided only by the polls around the end. So:
 *
 * - Never polled (status null): poll now.
 * - With an estimate (`estimated_completion`, remembered after the task leaves the
 *   queue) `r` ms away: wait `min(r·FRESH_FRACTION, r − STALE_LEAD_MS − u·minMs)`,
 *   clamped to the bounds, `u` uniform in [0, 1).
 *   - The lead: once processing, the upstream sends no estimate, so the remembered one
 *     is up to a whole render old and off by ±20 % of it (±36 s for a 3-minute render,
 *     plus the queue poll it came from). Reaching the minimum that far ahead of the
 *     estimate is what keeps the noticing delay at a plain `minMs` loop's.
 *   - `u·minMs` spreads where the minimum-interval polls fall relative to the estimate:
 *     a grid anchored on it would put the true end at one fixed phase whenever the
 *     estimate's error is small or regular, and the delay would lose its uniform spread.
 *   - `r·FRESH_FRACTION` only matters with a `maxMs` above the lead: a fresh estimate may
 *     be 20 % early, so never wait longer than half of what is left.
 *   At or after the estimate the task is overdue: the minimum.
 * - Queued without an estimate: by depth, linearly from the minimum at position 0 to the
 *   maximum at `DEEP_QUEUE_POSITION`; unknown depth sits halfway.
 * - Processing without an estimate: the end may come at any moment, so the minimum.
 * - Terminal: the caller stops polling; `maxMs` is returned for completeness.
 *
 * Jitter only shortens, by up to `JITTER_FRACTION`, and never below the minimum, so that
 * thousands of watches registered together drift apart without a minimum-interval poll
 * being stretched (which would add straight to the noticing delay) or a poll coming
 * sooner than the upstream allows.
 *
 * The constants are tuned against the workload simulated in
 * test/scheduler/interval.test.ts (≤ 0.5× the requests of a fixed 5 s loop at the same
 * noticing delay); change them there first.
 */

export type TaskStatus = "queued" | "processing" | "completed" | "failed";

export interface PollView {
  status: TaskStatus | null;
  queuePosition: number | null;
  /** The last known `estimated_completion`: keep passing it once processing, when the upstream stops sending one. */
  estimatedCompletionMs: number | null;
}

export interface IntervalBounds {
  minMs: number;
  maxMs: number;
}

export const FRESH_FRACTION = 0.5;
export const STALE_LEAD_MS = 40_000;
export const DEEP_QUEUE_POSITION = 10;
export const JITTER_FRACTION = 0.1;

/** Delay in ms until the next poll after a healthy answer (or before the first poll: status null → 0). */
export function nextPollDelay(
  view: PollView,
  now: number,
  bounds: IntervalBounds,
  random: () => number = Math.random,
): number {
  if (view.status === null) return 0;
  const { minMs } = bounds;
  // The floor is the upstream's rule; if misconfigured bounds cross, it wins.
  const maxMs = Math.max(minMs, bounds.maxMs);
  if (view.status === "completed" || view.status === "failed") return maxMs;

  const u = unit(random());
  const target = untilNextPoll(view, now, minMs, maxMs, u);
  const clamped = Math.min(maxMs, Math.max(minMs, target));
  const jittered = Math.floor(clamped * (1 - JITTER_FRACTION * u));
  return Math.max(minMs, jittered);
}

function untilNextPoll(
  view: PollView,
  now: number,
  minMs: number,
  maxMs: number,
  u: number,
): number {
  const estimate = view.estimatedCompletionMs;
  if (estimate !== null && Number.isFinite(estimate)) {
    const remaining = estimate - now;
    return Math.min(remaining * FRESH_FRACTION, remaining - STALE_LEAD_MS - u * minMs);
  }
  if (view.status === "processing") return minMs;
  const position = view.queuePosition;
  if (position === null || !Number.isFinite(position)) return (minMs + maxMs) / 2;
  const depth = Math.min(1, Math.max(0, position) / DEEP_QUEUE_POSITION);
  return minMs + (maxMs - minMs) * depth;
}

/** A misbehaving random source must not push a delay out of bounds. */
function unit(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}
