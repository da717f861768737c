/** Counts over the last minute in one-second buckets: upstream requests and errors for /admin/stats. */
export class RecentCounter {
  private readonly buckets = new Map<number, { requests: number; errors: number }>();

  add(now: number, error: boolean): void {
    const second = Math.floor(now / 1000);
    const bucket = this.buckets.get(second) ?? { requests: 0, errors: 0 };
    bucket.requests += 1;
    if (error) bucket.errors += 1;
    this.buckets.set(second, bucket);
    if (this.buckets.size > 120) this.prune(second);
  }

  lastMinute(now: number): { requests: number; errors: number } {
    const second = Math.floor(now / 1000);
    this.prune(second);
    let requests = 0;
    let errors = 0;
    for (const [at, b] of this.buckets) {
      if (at > second - 60) {
        requests += b.requests;
        errors += b.errors;
      }
    }
    return { requests, errors };
  }

  private prune(second: number): void {
    for (const at of this.buckets.keys()) if (at <= second - 60) this.buckets.delete(at);
  }
}
