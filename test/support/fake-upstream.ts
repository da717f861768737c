/**
 * A fake VibePeak upstream (`GET /v1/tasks/:taskId`) over real sockets, for scheduler tests,
 * the reliability suite, the benchmark and the demo. node:http only, so it also runs in a child
 * process; every option and lifecycle is plain data, so a CLI wrapper can pass them as JSON.
 *
 * Wire shapes (SPEC §1 and the vendor page):
 * - 200: `{ task_id, status, ...status fields, created_at, ...extra }`; timestamps are ISO 8601
 *   without milliseconds, like the vendor's examples.
 * - 401: `{"error":{"code":"INVALID_API_KEY","message":"Invalid or missing API key"}}`
 * - 404: `{"error":{"code":"TASK_NOT_FOUND","message":"Task <id> not found"}}`, for an unknown
 *   task and for another key's task alike (the upstream does not reveal which).
 * - 429: `{"error":{"code":"RATE_LIMIT_EXCEEDED",...}}`, `Retry-After` as configured.
 * - 500: JSON `INTERNAL_ERROR` envelope; 502/503: an HTML page, as a gateway in front would send.
 * - other paths: 404 `NOT_FOUND`; other methods: 405 `METHOD_NOT_ALLOWED`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type Clock, systemClock } from "../../src/clock.js";

export type TaskStatus = "queued" | "processing" | "completed" | "failed";

export interface UpstreamTaskError {
  readonly message: string;
  readonly code?: string;
  readonly [field: string]: unknown;
}

/**
 * What the task answers. Field names are the wire names. `extra` is spread last and verbatim,
 * so it can add unknown fields (pass-through tests) or override known ones (malformed answers).
 */
export type TaskState = { readonly extra?: Readonly<Record<string, unknown>> } & (
  | {
      readonly status: "queued";
      readonly queue_position: number;
      readonly estimated_completion: string;
    }
  | { readonly status: "processing"; readonly started_at: string }
  | {
      readonly status: "completed";
      /** Default: the time this task first answered `completed`. */
      readonly completed_at?: string;
      /** Merged over the default `{ video_url, expires_at: completed_at + 7 days }`. */
      readonly result?: Readonly<Record<string, unknown>>;
    }
  | { readonly status: "failed"; readonly error: UpstreamTaskError }
);

export type Fault =
  /** No `retryAfterS`: no `Retry-After` header. `http-date` is computed from the clock at serve time. */
  | {
      readonly kind: "429";
      readonly retryAfterS?: number;
      readonly retryAfterFormat?: "seconds" | "http-date";
    }
  | { readonly kind: "500" | "502" | "503" }
  /** Wait `delayMs` of real time (a client time-out fires first), then answer normally. */
  | { readonly kind: "slow"; readonly delayMs: number }
  /** `reset`: socket destroyed unanswered; `truncated`: 200 with half a JSON body; `not-json`: 200 HTML. */
  | { readonly kind: "reset" | "truncated" | "not-json" };

export type FaultKind = Fault["kind"];
/** A fault, or the kind alone for those that need no parameter. */
export type FaultSpec = Exclude<FaultKind, "slow"> | Fault;

/** `times` defaults to 1; the last step of a list repeats forever whatever its `times`. */
export type LifecycleStep =
  | TaskState
  | { readonly answer: TaskState; readonly times?: number }
  | { readonly fault: FaultSpec; readonly times?: number };

export interface TimelineEntry {
  /** Milliseconds after the task was added; the first entry also answers before its `atMs`. */
  readonly atMs: number;
  readonly state: TaskState;
}

/**
 * A list of steps consumed one per request (a fault step as soon as it is chosen, an answer step
 * only once its answer is sent; a global fault consumes nothing), or a timeline read from the clock.
 */
export type Lifecycle = readonly LifecycleStep[] | { readonly timeline: readonly TimelineEntry[] };

export interface AddTaskInput {
  readonly taskId: string;
  readonly apiKey: string;
  readonly lifecycle: Lifecycle;
  /** ISO 8601 or epoch ms; default: the clock when added. */
  readonly createdAt?: string | number;
}

export interface RecordedUpstreamRequest {
  /** Clock ms at arrival. */
  readonly at: number;
  readonly path: string;
  /** Null when the path is not `/v1/tasks/:taskId` (under any prefix). */
  readonly taskId: string | null;
  /** Null when the Authorization header is missing or not `Bearer <key>`. */
  readonly apiKey: string | null;
  /** `pending` while in flight; `aborted` when the client left before an answer. */
  readonly status: number | "reset" | "pending" | "aborted";
  /** The fault served, if any (a `slow` one stays recorded even though an answer followed). */
  readonly fault?: FaultKind;
}

export interface FakeUpstreamOptions {
  readonly clock?: Clock;
  /** Default 0 (any free port). Always bound to 127.0.0.1. */
  readonly port?: number;
  /** Keys that are valid even without tasks; a key also becomes valid when it is given a task. */
  readonly apiKeys?: readonly string[];
}

export interface FakeUpstream {
  /** Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  readonly requests: readonly RecordedUpstreamRequest[];
  readonly inFlight: number;
  readonly maxInFlight: number;
  /**
   * Adds the task, or replaces it (lifecycle restarts from the clock's now). Returns that instant: a
   * test that models which status a request saw counts from it, not from a clock read of its own.
   */
  addTask(input: AddTaskInput): number;
  /** The task answers 404 from now on. */
  removeTask(taskId: string): void;
  addKey(apiKey: string): void;
  /** The key answers 401 from now on (its tasks are kept, for a later `addKey`). */
  revokeKey(apiKey: string): void;
  /** The next `n` requests, whatever their task (or key), get this fault. Calls queue up. */
  failNext(n: number, fault: FaultSpec): void;
  /** Each request, with probability `rate`, gets one of `kinds` (seeded: reproducible). 0 turns it off. */
  setFaultRate(rate: number, kinds: readonly FaultSpec[], seed: number): void;
  clearFaults(): void;
  requestsFor(taskId: string): RecordedUpstreamRequest[];
  /** Clears the request log and restarts `maxInFlight` from the current `inFlight`. */
  reset(): void;
  /** Most requests whose arrival times fit in any window `[t, t + windowMs)`. */
  maxInWindow(windowMs: number, filter?: (r: RecordedUpstreamRequest) => boolean): number;
  /** Stops listening and destroys open sockets (keep-alive clients included). */
  close(): Promise<void>;
}

const DAY_MS = 86_400_000;

export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function toIso(at: string | number): string {
  return typeof at === "number" ? isoSeconds(at) : at;
}

export function queued(position: number, estimatedCompletion: string | number): TaskState {
  return {
    status: "queued",
    queue_position: position,
    estimated_completion: toIso(estimatedCompletion),
  };
}

export function processing(startedAt: string | number): TaskState {
  return { status: "processing", started_at: toIso(startedAt) };
}

export function completed(
  result?: Record<string, unknown>,
  completedAt?: string | number,
): TaskState {
  return {
    status: "completed",
    ...(completedAt === undefined ? {} : { completed_at: toIso(completedAt) }),
    ...(result === undefined ? {} : { result }),
  };
}

export function failed(error: string | UpstreamTaskError): TaskState {
  return { status: "failed", error: typeof error === "string" ? { message: error } : error };
}

export function withExtra(state: TaskState, extra: Record<string, unknown>): TaskState {
  return { ...state, extra: { ...state.extra, ...extra } };
}

/** Most of the times (any order) in one half-open window [t, t + windowMs). */
export function busiestWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end += 1) {
    while ((sorted[end] ?? 0) - (sorted[start] ?? 0) >= windowMs) start += 1;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

/** Tiny seeded PRNG (mulberry32): reproducible fault sequences without a dependency. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function toFault(spec: FaultSpec): Fault {
  return typeof spec === "string" ? { kind: spec } : spec;
}

type NormalStep = { answer: TaskState; times: number } | { fault: Fault; times: number };

interface TaskRecord {
  readonly taskId: string;
  readonly apiKey: string;
  readonly createdAt: string;
  readonly addedAt: number;
  readonly steps: NormalStep[] | null;
  readonly timeline: TimelineEntry[] | null;
  stepIndex: number;
  usedInStep: number;
  /** Memoised so that repeated polls see one stable `completed_at`. */
  completedAt?: number;
}

type MutableRecord = { -readonly [K in keyof RecordedUpstreamRequest]: RecordedUpstreamRequest[K] };

function normaliseStep(step: LifecycleStep): NormalStep {
  if ("status" in step) return { answer: step, times: 1 };
  if ("answer" in step) return { answer: step.answer, times: step.times ?? 1 };
  return { fault: toFault(step.fault), times: step.times ?? 1 };
}

function nearestAnswer(steps: readonly NormalStep[], from: number): TaskState | undefined {
  const ahead = steps.slice(from).find((s) => "answer" in s);
  const behind = steps.slice(0, from).findLast((s) => "answer" in s);
  const step = ahead ?? behind;
  return step && "answer" in step ? step.answer : undefined;
}

function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

function gatewayPage(status: number, reason: string): string {
  return `<html>\r\n<head><title>${status} ${reason}</title></head>\r\n<body>\r\n<center><h1>${status} ${reason}</h1></center>\r\n</body>\r\n</html>\r\n`;
}

const JSON_TYPE = { "content-type": "application/json" };
const HTML_TYPE = { "content-type": "text/html; charset=utf-8" };

interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}
type Outcome = Reply | "reset";

function reply(status: number, headers: Readonly<Record<string, string>>, body: string): Reply {
  return { status, headers, body };
}

function ok(body: string): Reply {
  return reply(200, JSON_TYPE, body);
}

function notFound(code: string, message: string): Reply {
  return reply(404, JSON_TYPE, errorBody(code, message));
}

function faultReply(
  fault: Exclude<Fault, { kind: "slow" }>,
  taskId: string | null,
  now: number,
): Outcome {
  switch (fault.kind) {
    case "429": {
      const headers: Record<string, string> = { ...JSON_TYPE };
      if (fault.retryAfterS !== undefined) {
        headers["retry-after"] =
          fault.retryAfterFormat === "http-date"
            ? new Date(now + fault.retryAfterS * 1000).toUTCString()
            : String(fault.retryAfterS);
      }
      return reply(429, headers, errorBody("RATE_LIMIT_EXCEEDED", "Too many requests"));
    }
    case "500":
      return reply(500, JSON_TYPE, errorBody("INTERNAL_ERROR", "Internal server error"));
    case "502":
      return reply(502, HTML_TYPE, gatewayPage(502, "Bad Gateway"));
    case "503":
      return reply(503, HTML_TYPE, gatewayPage(503, "Service Temporarily Unavailable"));
    case "reset":
      return "reset";
    case "truncated": {
      const whole = JSON.stringify({
        task_id: taskId ?? "task_unknown",
        status: "queued",
        queue_position: 1,
        estimated_completion: isoSeconds(now + 60_000),
        created_at: isoSeconds(now),
      });
      return ok(whole.slice(0, Math.floor(whole.length / 2)));
    }
    case "not-json":
      return reply(200, HTML_TYPE, "<!DOCTYPE html><html><body><h1>Maintenance</h1></body></html>");
  }
}

export async function startFakeUpstream(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const clock = opts.clock ?? systemClock;
  const keys = new Set(opts.apiKeys ?? []);
  const tasks = new Map<string, TaskRecord>();
  let requests: MutableRecord[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const queuedFaults: Array<{ fault: Fault; remaining: number }> = [];
  let faultRate: { rate: number; kinds: Fault[]; random: () => number } | null = null;

  function nextGlobalFault(): Fault | undefined {
    const head = queuedFaults[0];
    if (head) {
      head.remaining -= 1;
      if (head.remaining <= 0) queuedFaults.shift();
      return head.fault;
    }
    if (!faultRate) return undefined;
    const hit = faultRate.random() < faultRate.rate;
    const pick = faultRate.kinds[Math.floor(faultRate.random() * faultRate.kinds.length)];
    return hit ? pick : undefined;
  }

  function render(task: TaskRecord, state: TaskState): string {
    const { extra, ...fields } = state;
    let body: Record<string, unknown> = { task_id: task.taskId, ...fields };
    if (state.status === "completed") {
      task.completedAt ??= clock.now();
      const completedAt = state.completed_at ?? isoSeconds(task.completedAt);
      const parsed = Date.parse(completedAt);
      const expiresAt = isoSeconds((Number.isNaN(parsed) ? task.completedAt : parsed) + 7 * DAY_MS);
      const video = `https://cdn.vibepeak.ai/videos/${encodeURIComponent(task.taskId)}.mp4`;
      body = {
        ...body,
        completed_at: completedAt,
        result: { video_url: video, expires_at: expiresAt, ...state.result },
      };
    }
    return JSON.stringify({ ...body, created_at: task.createdAt, ...extra });
  }

  function consume(task: TaskRecord, steps: readonly NormalStep[]): void {
    const step = steps[task.stepIndex];
    if (!step || task.stepIndex === steps.length - 1) return;
    task.usedInStep += 1;
    if (task.usedInStep >= step.times) {
      task.stepIndex += 1;
      task.usedInStep = 0;
    }
  }

  /** The timeline's state at `at`: the request's recorded arrival, unless it was held back. */
  function timelineState(
    task: TaskRecord,
    timeline: readonly TimelineEntry[],
    at: number,
  ): TaskState | undefined {
    const elapsed = at - task.addedAt;
    return timeline.findLast((e) => e.atMs <= elapsed)?.state ?? timeline[0]?.state;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://upstream").pathname;
    const taskId = parseTaskId(path);
    const apiKey = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? null;
    const entry: MutableRecord = { at: clock.now(), path, taskId, apiKey, status: "pending" };
    requests.push(entry);
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let closed = false;
    res.on("close", () => {
      closed = true;
      inFlight -= 1;
      if (entry.status === "pending") entry.status = "aborted";
    });

    /** False when the client has already gone: nothing was answered. */
    const deliver = (outcome: Outcome, fault?: FaultKind): boolean => {
      if (closed) return false;
      if (fault) entry.fault = fault;
      if (outcome === "reset") {
        entry.status = "reset";
        req.socket.destroy();
        return true;
      }
      entry.status = outcome.status;
      const length = String(Buffer.byteLength(outcome.body));
      res.writeHead(outcome.status, { ...outcome.headers, "content-length": length });
      res.end(outcome.body);
      return true;
    };
    /** False when the client left during the wait. */
    const slowDown = (ms: number): Promise<boolean> => {
      entry.fault = "slow";
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(!closed), ms);
        res.once("close", () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
    };

    const globalFault = nextGlobalFault();
    // The status answered is the one at the recorded arrival (a second clock read could fall in the
    // next millisecond, past a timeline step), or at the end of a slow fault's delay.
    let answerAt = entry.at;
    if (globalFault?.kind === "slow") {
      if (!(await slowDown(globalFault.delayMs))) return;
      answerAt = clock.now();
    } else if (globalFault) {
      deliver(faultReply(globalFault, taskId, clock.now()), globalFault.kind);
      return;
    }

    const found = lookup(req.method, taskId, apiKey);
    if ("status" in found) {
      deliver(found);
      return;
    }
    const { task } = found;
    if (task.timeline) {
      const state = timelineState(task, task.timeline, answerAt);
      if (state) deliver(ok(render(task, state)));
      return;
    }
    const steps = task.steps ?? [];
    const step = steps[task.stepIndex];
    if (!step) return;
    if ("answer" in step) {
      if (deliver(ok(render(task, step.answer)))) consume(task, steps);
      return;
    }
    const settled = nearestAnswer(steps, task.stepIndex);
    consume(task, steps);
    if (step.fault.kind !== "slow") {
      deliver(faultReply(step.fault, taskId, clock.now()), step.fault.kind);
    } else if (settled && (await slowDown(step.fault.delayMs))) {
      deliver(ok(render(task, settled)));
    }
  }

  /** The task asked for, or the 4xx the real upstream gives before looking at a task's life. */
  function lookup(
    method: string | undefined,
    taskId: string | null,
    apiKey: string | null,
  ): { task: TaskRecord } | Reply {
    if (taskId === null) return notFound("NOT_FOUND", "No such route");
    if (method !== "GET") {
      return reply(405, { ...JSON_TYPE, allow: "GET" }, errorBody("METHOD_NOT_ALLOWED", "Use GET"));
    }
    if (apiKey === null || !keys.has(apiKey)) {
      return reply(401, JSON_TYPE, errorBody("INVALID_API_KEY", "Invalid or missing API key"));
    }
    const task = tasks.get(taskId);
    if (!task || task.apiKey !== apiKey)
      return notFound("TASK_NOT_FOUND", `Task ${taskId} not found`);
    return { task };
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, JSON_TYPE);
      res.end(errorBody("INTERNAL_ERROR", `fake upstream bug: ${String(err)}`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get requests() {
      return requests;
    },
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    addTask({ taskId, apiKey, lifecycle, createdAt }) {
      const isTimeline = "timeline" in lifecycle;
      const steps = isTimeline ? null : lifecycle.map(normaliseStep);
      const timeline = isTimeline ? [...lifecycle.timeline].sort((a, b) => a.atMs - b.atMs) : null;
      if ((steps ?? timeline ?? []).length === 0) {
        throw new Error(`fake upstream: task ${taskId} needs at least one lifecycle entry`);
      }
      if (steps?.some((s) => "fault" in s && s.fault.kind === "slow") && !nearestAnswer(steps, 0)) {
        throw new Error(`fake upstream: task ${taskId} has a slow step but no answer to give`);
      }
      keys.add(apiKey);
      const addedAt = clock.now();
      tasks.set(taskId, {
        taskId,
        apiKey,
        createdAt: toIso(createdAt ?? addedAt),
        addedAt,
        steps,
        timeline,
        stepIndex: 0,
        usedInStep: 0,
      });
      return addedAt;
    },
    removeTask(taskId) {
      tasks.delete(taskId);
    },
    addKey(apiKey) {
      keys.add(apiKey);
    },
    revokeKey(apiKey) {
      keys.delete(apiKey);
    },
    failNext(n, fault) {
      if (n > 0) queuedFaults.push({ fault: toFault(fault), remaining: n });
    },
    setFaultRate(rate, kinds, seed) {
      faultRate =
        rate > 0 && kinds.length > 0
          ? { rate, kinds: kinds.map(toFault), random: mulberry32(seed) }
          : null;
    },
    clearFaults() {
      queuedFaults.length = 0;
      faultRate = null;
    },
    requestsFor(taskId) {
      return requests.filter((r) => r.taskId === taskId);
    },
    reset() {
      requests = [];
      maxInFlight = inFlight;
    },
    maxInWindow(windowMs, filter) {
      return busiestWindow(
        requests.filter((r) => !filter || filter(r)).map((r) => r.at),
        windowMs,
      );
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** `/v1/tasks/:taskId`, also under a path prefix (an UPSTREAM_BASE_URL with a path, as behind a
 * gateway): a test can tell its clients apart by the prefix each was given. */
function parseTaskId(path: string): string | null {
  const raw = /^(?:\/[^/]+)*?\/v1\/tasks\/([^/]+)$/.exec(path)?.[1];
  if (raw === undefined) return null;
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}
