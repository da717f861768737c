/**
 * A webhook receiver over real sockets: records what taskhook delivers and answers as a test
 * programs it (statuses, delays, resets, hangs, redirects, outages on the same port).
 * node:http only, so it also runs in a child process.
 *
 * How a request is answered, first match wins: the queue for its path, the global queue, the
 * responder for its path, the global responder, then `200 ok`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type Clock, systemClock } from "../../src/clock.js";

export interface ReceivedRequest {
  /** Clock ms when the body had fully arrived. */
  readonly at: number;
  readonly method: string;
  /** Path without the query string; the one that per-path programming matches. */
  readonly path: string;
  /** `""` or the query string including its `?`. */
  readonly query: string;
  /** Lower-cased names; repeated headers joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  /** Raw body as received (UTF-8). */
  readonly body: string;
  /** Parsed body, or null when empty or not JSON. */
  readonly json: unknown;
}

export interface ReceiverReply {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Real-time delay before answering (to exceed a delivery time-out). */
  readonly delayMs?: number;
}

/** `reset`: destroy the socket unanswered; `hang`: never answer (until `down()` or `close()`). */
export type ReceiverAction = ReceiverReply | "reset" | "hang";

/** `n` counts from 1: requests to this path for a per-path responder, all requests otherwise. */
export type Responder = (
  req: ReceivedRequest,
  n: number,
) => ReceiverAction | Promise<ReceiverAction>;

export type RequestsCondition = number | ((requests: readonly ReceivedRequest[]) => boolean);

export interface ReceiverOptions {
  readonly clock?: Clock;
  /** Default 0 (any free port). Always bound to 127.0.0.1. */
  readonly port?: number;
}

export interface Receiver {
  /** Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  readonly requests: readonly ReceivedRequest[];
  /** False between `down()` and `up()`. */
  readonly isUp: boolean;
  requestsTo(path: string): ReceivedRequest[];
  /** Answers for the next requests, in order (of `path` if given, of any path otherwise). */
  enqueue(actions: ReceiverAction | readonly ReceiverAction[], path?: string): void;
  /** Answers requests once the queues are empty; null restores the default. */
  setResponder(responder: Responder | null, path?: string): void;
  /** `status` for the next `times` requests then the default, or for good when `times` is absent. */
  respondWith(status: number, times?: number, path?: string): void;
  /** Resolves with the requests once they satisfy the condition; rejects after `timeoutMs` of real time. */
  waitFor(condition: RequestsCondition, timeoutMs?: number): Promise<ReceivedRequest[]>;
  /** Clears the log, the queues and the responders. */
  reset(): void;
  /** Stops listening and drops open connections: connecting is refused until `up()`. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  /** Stops for good, destroying open sockets; pending `waitFor`s reject. */
  close(): Promise<void>;
}

/** A redirect answer, for `enqueue` or a responder; taskhook must treat it as a failure. */
export function redirect(location: string, status = 302): ReceiverReply {
  return { status, headers: { location }, body: "" };
}

const DEFAULT_REPLY: ReceiverReply = {
  status: 200,
  headers: { "content-type": "text/plain" },
  body: "ok",
};

interface Waiter {
  readonly check: () => boolean;
  readonly fail: (err: Error) => void;
}

function isActionList(
  actions: ReceiverAction | readonly ReceiverAction[],
): actions is readonly ReceiverAction[] {
  return Array.isArray(actions);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

function parseJson(body: string): unknown {
  if (body.trim() === "") return null;
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return null;
  }
}

function summarise(requests: readonly ReceivedRequest[]): string {
  const shown = requests.slice(-10).map((r) => `${r.method} ${r.path}`);
  return requests.length > 10 ? `[…, ${shown.join(", ")}]` : `[${shown.join(", ")}]`;
}

export async function startReceiver(opts: ReceiverOptions = {}): Promise<Receiver> {
  const clock = opts.clock ?? systemClock;
  let requests: ReceivedRequest[] = [];
  let queues = new Map<string | null, ReceiverAction[]>();
  let responders = new Map<string | null, Responder>();
  const waiters = new Set<Waiter>();
  let listening = false;
  let closedForGood = false;

  function record(entry: ReceivedRequest): void {
    requests.push(entry);
    for (const waiter of waiters) waiter.check();
  }

  async function choose(entry: ReceivedRequest): Promise<ReceiverAction> {
    for (const key of [entry.path, null]) {
      const next = queues.get(key)?.shift();
      if (next !== undefined) return next;
    }
    for (const key of [entry.path, null]) {
      const responder = responders.get(key);
      if (!responder) continue;
      const n = key === null ? requests.length : requests.filter((r) => r.path === key).length;
      return responder(entry, n);
    }
    return DEFAULT_REPLY;
  }

  function enqueue(actions: ReceiverAction | readonly ReceiverAction[], path?: string): void {
    const key = path ?? null;
    const list = isActionList(actions) ? actions : [actions];
    queues.set(key, [...(queues.get(key) ?? []), ...list]);
  }

  function setResponder(responder: Responder | null, path?: string): void {
    if (responder) responders.set(path ?? null, responder);
    else responders.delete(path ?? null);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? "/", "http://receiver");
    const entry: ReceivedRequest = {
      at: clock.now(),
      method: req.method ?? "GET",
      path: url.pathname,
      query: url.search,
      headers: flattenHeaders(req),
      body,
      json: parseJson(body),
    };
    record(entry);
    const action = await choose(entry);
    if (action === "hang") return;
    if (action === "reset") {
      req.socket.destroy();
      return;
    }
    if (action.delayMs !== undefined && action.delayMs > 0) {
      const delayMs = action.delayMs;
      const finished = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), delayMs);
        res.once("close", () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      if (!finished) return;
    }
    // Node would refuse a body on these statuses; a test asking for one gets none.
    const bodiless = action.status === 204 || action.status === 304;
    const text = bodiless ? "" : (action.body ?? "");
    const length: Record<string, string> = bodiless
      ? {}
      : { "content-length": String(Buffer.byteLength(text)) };
    res.writeHead(action.status, { ...action.headers, ...length });
    res.end(text);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`receiver bug: ${String(err)}`);
    });
  });

  function listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        listening = true;
        resolve();
      });
    });
  }

  function stop(): Promise<void> {
    if (!listening) return Promise.resolve();
    listening = false;
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  await listen(opts.port ?? 0);
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get requests() {
      return requests;
    },
    get isUp() {
      return listening;
    },
    requestsTo(path) {
      return requests.filter((r) => r.path === path);
    },
    enqueue,
    setResponder,
    respondWith(status, times, path) {
      const reply: ReceiverReply = { status, body: "" };
      if (times === undefined) setResponder(() => reply, path);
      else
        enqueue(
          Array.from({ length: times }, () => reply),
          path,
        );
    },
    waitFor(condition, timeoutMs = 5_000) {
      const satisfied = (): boolean =>
        typeof condition === "number" ? requests.length >= condition : condition(requests);
      if (satisfied()) return Promise.resolve([...requests]);
      if (closedForGood) return Promise.reject(new Error("receiver.waitFor: receiver is closed"));
      return new Promise((resolve, reject) => {
        const settle = (): void => {
          clearTimeout(timer);
          waiters.delete(waiter);
        };
        const waiter: Waiter = {
          check: () => {
            if (!satisfied()) return false;
            settle();
            resolve([...requests]);
            return true;
          },
          fail: (err) => {
            settle();
            reject(err);
          },
        };
        const what = typeof condition === "number" ? `${condition} request(s)` : "its predicate";
        const timer = setTimeout(
          () =>
            waiter.fail(
              new Error(
                `receiver.waitFor: timed out after ${timeoutMs} ms waiting for ${what}; ` +
                  `${requests.length} recorded: ${summarise(requests)}`,
              ),
            ),
          timeoutMs,
        );
        waiters.add(waiter);
      });
    },
    reset() {
      requests = [];
      queues = new Map();
      responders = new Map();
    },
    down() {
      return stop();
    },
    up() {
      if (closedForGood) return Promise.reject(new Error("receiver: up() after close()"));
      return listening ? Promise.resolve() : listen(port);
    },
    async close() {
      closedForGood = true;
      for (const waiter of [...waiters])
        waiter.fail(new Error("receiver.waitFor: receiver closed"));
      await stop();
    },
  };
}
