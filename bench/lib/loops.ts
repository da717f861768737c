import { Agent, type Dispatcher, request } from "undici";
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

/**
 * The polls figure's baseline: a bare undici loop GETting `/v1/tasks/{taskId}` with the task's key,
 * `concurrency` in flight over as many sockets, for `seconds`.
 */
export async function bareGets(
  baseUrl: string,
  concurrency: number,
  seconds: number,
  taskOf: (n: number) => { taskId: string; apiKey: string },
): Promise<number> {
  const agent = new Agent({ connections: concurrency, keepAliveTimeout: 30_000 });
  const rate = await closedLoop(concurrency, seconds, async (n) => {
    const { taskId, apiKey } = taskOf(n);
    const res = await request(`${baseUrl}/v1/tasks/${taskId}`, {
      method: "GET",
      dispatcher: agent,
      headers: { authorization: `Bearer ${apiKey}`, accept: "application/json" },
    });
    await res.body.text();
  });
  await agent.close();
  return rate;
}

/** The webhooks figure's baseline: a bare undici loop POSTing every body, `concurrency` at a time. */
export async function barePosts(
  url: string,
  bodies: readonly string[],
  concurrency: number,
  connections: number,
): Promise<number> {
  const agent = new Agent({ connections, keepAliveTimeout: 10_000 });
  const rate = await drainLoop(concurrency, bodies.length, async (i) => {
    const res = await request(url, {
      method: "POST",
      dispatcher: agent,
      headers: { "content-type": "application/json" },
      body: bodies[i],
    });
    await res.body.text();
  });
  await agent.close();
  return rate;
}

/**
 * The same request through undici's `dispatch` with the least handler that reads the answer: the
 * floor under any client built on undici (taskhook's own, src/outbound.ts, adds a deadline and a
 * body limit). Used by bench/probes/layers.ts to show what the bare loops spend in `request`.
 */
export function bareDispatch(agent: Agent, options: Dispatcher.DispatchOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    agent.dispatch(options, {
      onRequestStart() {},
      onResponseStart() {},
      onResponseData(_controller, chunk) {
        chunks.push(chunk);
      },
      onResponseEnd() {
        resolve(Buffer.concat(chunks).toString("utf8"));
      },
      onResponseError(_controller, err) {
        reject(err);
      },
    });
  });
}
