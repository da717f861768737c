import { setMaxListeners } from "node:events";

/**
 * Time-out signals for outgoing requests, shared by the requests started within the same
 * millisecond. The loops start a batch of requests at once (one tick's claims), and those have the
 * same deadline: one `AbortSignal.timeout` serves them all. A signal and a timer per request were
 * ~4 % of a poll's or a webhook's CPU; sharing moves a deadline by less than a millisecond.
 */
export function sharedDeadlines(timeoutMs: number): () => AbortSignal {
  let signal: AbortSignal | null = null;
  let createdAt = Number.NEGATIVE_INFINITY;
  return () => {
    const now = performance.now();
    if (signal === null || now - createdAt >= 1) {
      signal = AbortSignal.timeout(timeoutMs);
      // Each request listens for the abort: a batch may exceed the default warning threshold (10).
      setMaxListeners(0, signal);
      createdAt = now;
    }
    return signal;
  };
}
