/**
 * "Never more than `limit` requests in any window of `windowMs`" — exactly, not on average.
 *
 * A token bucket refilled at `limit` per second lets a full bucket go out and be refilled
 * within the same second: 2×`limit` in a sliding second. Here the last `limit` send times
 * are kept in a ring; a send is allowed only if the oldest of them has left the window,
 * so any half-open interval [t, t + windowMs) holds at most `limit` sends. O(1) per call.
 *
 * It counts our sends, which is right for the webhook-test ping limit. The upstream budgets count
 * arrivals instead (a send can arrive late): those are ArrivalBudget's.
 */
export class RateWindow {
  private readonly sends: number[] = [];
  /** Index in `sends` of the oldest of the last `limit` sends, once the ring is full. */
  private oldest = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs = 1000,
  ) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`RateWindow limit must be a positive integer, got ${limit}`);
    }
    if (!(windowMs > 0) || !Number.isFinite(windowMs)) {
      throw new RangeError(`RateWindow windowMs must be a positive number, got ${windowMs}`);
    }
  }

  /** Records a send at `now` and returns true if the budget allows it; otherwise records nothing. */
  tryAcquire(now: number): boolean {
    if (this.sends.length < this.limit) {
      this.sends.push(now);
      return true;
    }
    if (now < this.nextFreeAt(now)) return false;
    this.sends[this.oldest] = now;
    this.oldest = (this.oldest + 1) % this.limit;
    return true;
  }

  /** The earliest time, not before `now`, at which `tryAcquire` would succeed. */
  nextFreeAt(now: number): number {
    if (this.sends.length < this.limit) return now;
    const oldest = this.sends[this.oldest] ?? Number.NEGATIVE_INFINITY;
    return Math.max(now, oldest + this.windowMs);
  }
}
