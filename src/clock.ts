/** The one source of time. Tests pass a `ManualClock`; production uses `systemClock`. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to: intervals, backoff and expiry are tested without sleeping. */
export class ManualClock implements Clock {
  constructor(private current = Date.parse("2026-01-04T12:00:00.000Z")) {}

  now(): number {
    return this.current;
  }

  advance(ms: number): void {
    this.current += ms;
  }

  set(ms: number): void {
    this.current = ms;
  }
}
