import { sleep } from "./quiet.js";

/** Completions per second over `seconds`, after half a second of warm-up. */
export async function ratePerSecond(count: () => number, seconds: number): Promise<number> {
  await sleep(500);
  const c0 = count();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  return ((count() - c0) * 1000) / (performance.now() - t0);
}

/**
 * `concurrency` workers each awaiting `op(i)` (i counts up across workers) then starting the next,
 * for `seconds` after a warm-up: a bare closed loop. Returns operations per second.
 */
export async function closedLoop(
  concurrency: number,
  seconds: number,
  op: (i: number) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  let done = 0;
  let stopping = false;
  const worker = async () => {
    while (!stopping) {
      await op(next++);
      done += 1;
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  const rate = await ratePerSecond(() => done, seconds);
  stopping = true;
  await Promise.all(workers);
  return rate;
}

/** `op(i)` for every i below `count`, `concurrency` at a time. Returns operations per second. */
export async function drainLoop(
  concurrency: number,
  count: number,
  op: (i: number) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    for (let i = next++; i < count; i = next++) await op(i);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (count * 1000) / (performance.now() - started);
}
