import type { Db } from "../db/client.js";
import { appendEvent, dueExpiries, markSeen } from "../db/outbox.js";
import type { PollStatements, RecordedTarget } from "../db/polls.js";
import type { PollTarget, Watch } from "../db/schema.js";
import { endWatches } from "../db/watches.js";
import { backoffDelay } from "../domain/backoff.js";
import { isForward, isTerminal, type TaskStatus } from "../domain/events.js";
import { type IntervalBounds, nextPollDelay } from "./interval.js";
import type { PollResult, TaskAnswer } from "./upstream.js";

/** Three consecutive 404 TASK_NOT_FOUND or 401 INVALID_API_KEY answers end the watches (SPEC §4). */
export const REJECT_LIMIT = 3;
/** The exponential backoff after faults is capped here (SPEC §4). */
export const BACKOFF_CAP_MS = 5 * 60 * 1000;

export interface PollOutcome {
  targetId: number;
  sentAt: number;
  result: PollResult;
  /** For a 429: the key is silent until then. */
  silencedUntil?: number;
}

export interface RecordContext {
  db: Db;
  stmts: PollStatements;
  now: number;
  bounds: IntervalBounds;
  random: () => number;
  /**
   * When a target of this tenant polled at `at` may really be claimed: under a key's overload, behind
   * the targets of that key already waiting (round robin per key). Default: `at`.
   */
  queueBehind?: (tenantId: string, at: number) => number;
}

export interface RecordSummary {
  events: string[];
  backwards: number;
}

/**
 * Records poll outcomes: the new poll state, the events of every active watch that has not yet seen
 * the task's status, their pending deliveries, and the next poll time. The caller runs this inside one
 * synchronous transaction, so a crash leaves either all of it or none (the poll is then repeated).
 */
export function recordOutcomes(
  ctx: RecordContext,
  outcomes: readonly PollOutcome[],
): RecordSummary {
  const summary: RecordSummary = { events: [], backwards: 0 };
  for (const outcome of outcomes) {
    const target = ctx.stmts.byId(outcome.targetId);
    if (!target) continue;
    // Counted from the answer, not the send: a request that left or arrived late must not let the
    // next one reach the upstream sooner than the per-task minimum after it.
    const floor = Math.max(outcome.sentAt, ctx.now) + ctx.bounds.minMs;
    const result = outcome.result;
    switch (result.kind) {
      case "ok":
        recordAnswer(ctx, target, result.task, floor, summary);
        break;
      case "rejected":
        recordRejection(ctx, target, result.code, floor, summary);
        break;
      case "rate_limited":
        schedule(ctx, target, Math.max(floor, outcome.silencedUntil ?? ctx.now + ctx.bounds.minMs));
        break;
      case "fault": {
        const faultCount = target.faultCount + 1;
        const delay = backoffDelay(
          faultCount,
          { baseMs: ctx.bounds.minMs, capMs: BACKOFF_CAP_MS, floorMs: ctx.bounds.minMs },
          ctx.random,
        );
        schedule(ctx, target, Math.max(floor, ctx.now + delay), { faultCount });
        break;
      }
    }
  }
  return summary;
}

/** Writes the target's outcome (its row with `changes`) and its next poll time. */
function schedule(
  ctx: RecordContext,
  target: PollTarget,
  dueAt: number,
  changes: Partial<RecordedTarget> = {},
) {
  const row: RecordedTarget = {
    id: target.id,
    taskStatus: target.taskStatus,
    taskJson: target.taskJson,
    queuePosition: target.queuePosition,
    estimatedCompletionAt: target.estimatedCompletionAt,
    faultCount: target.faultCount,
    rejectCode: target.rejectCode,
    rejectCount: target.rejectCount,
    active: target.active,
    watchesBehind: target.watchesBehind,
    ...changes,
    dueAt,
    nextPollAt: ctx.queueBehind?.(target.tenantId, dueAt) ?? dueAt,
  };
  ctx.stmts.record(row);
}

function parseTime(value: unknown): number | null {
  if (typeof value !== "string") return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

function recordAnswer(
  ctx: RecordContext,
  target: PollTarget,
  task: TaskAnswer,
  floor: number,
  summary: RecordSummary,
) {
  const previous = target.taskStatus as TaskStatus | null;
  const forward = isForward(previous, task.status);
  if (!forward && previous !== task.status) summary.backwards += 1;
  // A backwards answer is ignored whole: the task keeps its furthest status and that status's body.
  const status: TaskStatus = forward || previous === null ? task.status : previous;
  const taskJson = forward || previous === task.status ? JSON.stringify(task) : target.taskJson;
  const queuePosition = status === "queued" ? (task.queue_position ?? null) : null;
  const estimatedCompletionAt =
    parseTime(task.estimated_completion) ?? target.estimatedCompletionAt;
  const terminal = isTerminal(status);
  // Only a changed answer can be news to a watch, unless a watch registered since the last answer.
  const news =
    status !== previous ||
    queuePosition !== target.queuePosition ||
    terminal ||
    target.watchesBehind;
  const delay = nextPollDelay(
    { status, queuePosition, estimatedCompletionMs: estimatedCompletionAt },
    ctx.now,
    ctx.bounds,
    ctx.random,
  );
  schedule(ctx, target, Math.max(floor, ctx.now + delay), {
    taskStatus: status,
    taskJson,
    queuePosition,
    estimatedCompletionAt,
    faultCount: 0,
    rejectCode: null,
    rejectCount: 0,
    watchesBehind: false,
    ...(terminal ? { active: false } : {}),
  });
  if (!news) return;

  const body = taskJson === null ? null : (JSON.parse(taskJson) as Record<string, unknown>);
  const finished: string[] = [];
  for (const watch of ctx.stmts.activeWatches(target.id)) {
    notifyWatch(ctx, watch, status, queuePosition, body, summary);
    if (terminal) finished.push(watch.id);
  }
  endWatches(ctx.db, finished, "done", null, ctx.now);
}

/** One watch's view of a new answer: an event when its status is new to it (filtered), or when the
 * queue position moved (opt-in). */
function notifyWatch(
  ctx: RecordContext,
  watch: Watch,
  status: TaskStatus,
  queuePosition: number | null,
  task: Record<string, unknown> | null,
  summary: RecordSummary,
) {
  const seen = watch.lastStatus as TaskStatus | null;
  const out = { ...watch };
  if (seen !== status) {
    if (
      appendEvent(
        ctx.db,
        out,
        { type: `task.${status}`, status, previousStatus: seen, task },
        ctx.now,
      )
    ) {
      summary.events.push(`task.${status}`);
    }
  } else if (status === "queued" && queuePosition !== watch.lastQueuePosition) {
    const type = "task.queue_position_changed";
    if (appendEvent(ctx.db, out, { type, status, previousStatus: seen, task }, ctx.now))
      summary.events.push(type);
  } else {
    return;
  }
  markSeen(ctx.db, watch.id, status, queuePosition);
}

function recordRejection(
  ctx: RecordContext,
  target: PollTarget,
  code: "TASK_NOT_FOUND" | "INVALID_API_KEY",
  floor: number,
  summary: RecordSummary,
) {
  const rejectCount = target.rejectCode === code ? target.rejectCount + 1 : 1;
  const next = Math.max(floor, ctx.now + ctx.bounds.minMs);
  if (rejectCount < REJECT_LIMIT) {
    schedule(ctx, target, next, { rejectCode: code, rejectCount });
    return;
  }
  schedule(ctx, target, next, { rejectCode: code, rejectCount, active: false });
  const task =
    target.taskJson === null ? null : (JSON.parse(target.taskJson) as Record<string, unknown>);
  const status = target.taskStatus as TaskStatus | null;
  const ids: string[] = [];
  for (const watch of ctx.stmts.activeWatches(target.id)) {
    const out = { ...watch };
    const event = {
      type: "watch.failed" as const,
      status,
      previousStatus: null,
      task,
      reason: code,
    };
    if (appendEvent(ctx.db, out, event, ctx.now)) summary.events.push("watch.failed");
    ids.push(watch.id);
  }
  endWatches(ctx.db, ids, "failed", code, ctx.now);
}

/** Ends watches whose lifetime ran out with a `watch.expired` event. Call inside a transaction. */
export function expireWatches(ctx: RecordContext, limit: number): RecordSummary {
  const summary: RecordSummary = { events: [], backwards: 0 };
  const due = dueExpiries(ctx.db, ctx.now, limit);
  for (const watch of due) {
    const target = ctx.stmts.byId(watch.pollTargetId);
    const task = target?.taskJson ? (JSON.parse(target.taskJson) as Record<string, unknown>) : null;
    const status = (target?.taskStatus ?? null) as TaskStatus | null;
    const event = { type: "watch.expired" as const, status, previousStatus: null, task };
    if (appendEvent(ctx.db, { ...watch }, event, ctx.now)) summary.events.push("watch.expired");
  }
  endWatches(
    ctx.db,
    due.map((w) => w.id),
    "expired",
    null,
    ctx.now,
  );
  return summary;
}
