/**
 * "Never more than `limit` requests arriving upstream in any window of `windowMs`", whatever
 * happens between our decision to send and the arrival.
 *
 * Counting send times (RateWindow) holds only if a request arrives when it is sent. One that leaves
 * late — a stalled event loop, a connection still being opened — arrives among requests sent a whole
 * window after it, and the upstream sees more than `limit` in one second. A request can only arrive
 * between its send and its end (answer or abort), so here it holds its slot from the send until one
 * window after its end: a send is allowed while fewer than `limit` requests are in flight or ended
 * within the window. With a prompt upstream this is the send-time budget; a slow one spends less.
 */
export class ArrivalBudget {
  private inFlight = 0;
  /** End times of finished requests still within a window, oldest first, from `head`. */
  private ends: number[] = [];
  private head = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs = 1000,
  ) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`ArrivalBudget limit must be a positive integer, got ${limit}`);
    }
    if (!(windowMs > 0) || !Number.isFinite(windowMs)) {
      throw new RangeError(`ArrivalBudget windowMs must be a positive number, got ${windowMs}`);
    }
  }

  /** Takes a slot for a request sent at `now` if the budget allows it; `release` it when it ends. */
  tryAcquire(now: number): boolean {
    this.prune(now);
    if (this.inFlight + this.ends.length - this.head >= this.limit) return false;
    this.inFlight += 1;
    return true;
  }

  /** The request of an acquired slot ended (answered, failed or aborted) at `now`. */
  release(now: number): void {
    if (this.inFlight === 0) return;
    this.inFlight -= 1;
    // A clock stepped back must not break the order the pruning relies on.
    const last = this.ends[this.ends.length - 1] ?? Number.NEGATIVE_INFINITY;
    this.ends.push(Math.max(now, last));
  }

  /**
   * The earliest time, not before `now`, at which `tryAcquire` could succeed. A slot held by a request
   * in flight frees one window after it ends, so at the soonest one window from now.
   */
  nextFreeAt(now: number): number {
    this.prune(now);
    const excess = this.inFlight + this.ends.length - this.head - this.limit;
    if (excess < 0) return now;
    const end = this.ends[this.head + excess];
    return end === undefined ? now + this.windowMs : Math.max(now, end + this.windowMs);
  }

  /** Nothing in flight and nothing ended within the window: the same as a new budget. */
  isIdle(now: number): boolean {
    this.prune(now);
    return this.inFlight === 0 && this.head === this.ends.length;
  }

  private prune(now: number): void {
    while (this.head < this.ends.length && (this.ends[this.head] ?? 0) + this.windowMs <= now) {
      this.head += 1;
    }
    if (this.head > 1024 && this.head * 2 > this.ends.length) {
      this.ends = this.ends.slice(this.head);
      this.head = 0;
    }
  }
}
