import { and, eq, sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { type PollTarget, pollTargets, watches } from "./schema.js";

export type DueTarget = Pick<
  PollTarget,
  "id" | "tenantId" | "taskId" | "dueAt" | "lastPolledAt" | "taskStatus"
>;

/**
 * The scheduler's hot statements, prepared once. The due query walks the partial index
 * `poll_targets_due` (active = 1, by next_poll_at) in order and stops after `limit` rows: a tick
 * costs O(batch), however many targets are due or active.
 */
export function pollStatements(db: Db) {
  const due = db
    .select({
      id: pollTargets.id,
      tenantId: pollTargets.tenantId,
      taskId: pollTargets.taskId,
      dueAt: pollTargets.dueAt,
      lastPolledAt: pollTargets.lastPolledAt,
      taskStatus: pollTargets.taskStatus,
    })
    .from(pollTargets)
    .where(
      sql`${pollTargets.active} = 1 AND ${pollTargets.nextPollAt} <= ${sql.placeholder("now")}`,
    )
    .orderBy(pollTargets.nextPollAt)
    .limit(sql.placeholder("limit"))
    .prepare();

  const lease = db
    .update(pollTargets)
    .set({
      leaseUntil: sql`${sql.placeholder("leaseUntil")}`,
      nextPollAt: sql`${sql.placeholder("leaseUntil")}`,
      lastPolledAt: sql`${sql.placeholder("now")}`,
    })
    .where(eq(pollTargets.id, sql.placeholder("id")))
    .prepare();

  const defer = db
    .update(pollTargets)
    .set({ nextPollAt: sql`${sql.placeholder("at")}` })
    .where(eq(pollTargets.id, sql.placeholder("id")))
    .prepare();

  const release = db
    .update(pollTargets)
    .set({ leaseUntil: null, nextPollAt: sql`${pollTargets.dueAt}` })
    .where(eq(pollTargets.id, sql.placeholder("id")))
    .prepare();

  // After the poller that leased them died: due again, but never sooner than the per-task floor
  // after the poll it may have sent just before dying.
  const releaseAll = db
    .update(pollTargets)
    .set({
      leaseUntil: null,
      nextPollAt: sql`max(${pollTargets.dueAt}, coalesce(${pollTargets.lastPolledAt}, 0) + ${sql.placeholder("minIntervalMs")})`,
    })
    .where(sql`${pollTargets.leaseUntil} IS NOT NULL`)
    .prepare();

  // Every outcome of a poll writes the same columns (unchanged ones with their old value): one
  // prepared statement records them all.
  const record = db
    .update(pollTargets)
    .set({
      taskStatus: sql`${sql.placeholder("taskStatus")}`,
      taskJson: sql`${sql.placeholder("taskJson")}`,
      queuePosition: sql`${sql.placeholder("queuePosition")}`,
      estimatedCompletionAt: sql`${sql.placeholder("estimatedCompletionAt")}`,
      leaseUntil: null,
      faultCount: sql`${sql.placeholder("faultCount")}`,
      rejectCode: sql`${sql.placeholder("rejectCode")}`,
      rejectCount: sql`${sql.placeholder("rejectCount")}`,
      nextPollAt: sql`${sql.placeholder("nextPollAt")}`,
      dueAt: sql`${sql.placeholder("dueAt")}`,
      active: sql`${sql.placeholder("active")}`,
      watchesBehind: sql`${sql.placeholder("watchesBehind")}`,
    })
    .where(eq(pollTargets.id, sql.placeholder("id")))
    .prepare();

  const byId = db
    .select()
    .from(pollTargets)
    .where(eq(pollTargets.id, sql.placeholder("id")))
    .prepare();

  const activeWatches = db
    .select()
    .from(watches)
    .where(and(eq(watches.pollTargetId, sql.placeholder("id")), sql`${watches.status} = 'active'`))
    .orderBy(watches.id)
    .prepare();

  const earliestDue = db
    .select({ at: sql<number | null>`min(${pollTargets.nextPollAt})` })
    .from(pollTargets)
    .where(sql`${pollTargets.active} = 1`)
    .prepare();

  return {
    due: (now: number, limit: number): DueTarget[] => due.all({ now, limit }),
    /** Marks a target in flight: due again only after the lease, should this process die. */
    lease: (id: number, now: number, leaseUntil: number) => lease.run({ id, now, leaseUntil }),
    defer: (id: number, at: number) => defer.run({ id, at }),
    /** Hands an in-flight target back: claimable again at once, still oldest due. */
    release: (id: number) => release.run({ id }),
    /** Hands back every target in flight (their poller died); returns how many. */
    releaseAll: (minIntervalMs: number): number => releaseAll.run({ minIntervalMs }).changes,
    /** Writes a poll's outcome: the target's new state and when to poll it next. */
    record: (t: RecordedTarget) =>
      record.run({ ...t, active: t.active ? 1 : 0, watchesBehind: t.watchesBehind ? 1 : 0 }),
    byId: (id: number): PollTarget | undefined => byId.get({ id }),
    activeWatches: (targetId: number) => activeWatches.all({ id: targetId }),
    earliestDue: (): number | null => earliestDue.get()?.at ?? null,
  };
}

export type PollStatements = ReturnType<typeof pollStatements>;

export type RecordedTarget = Pick<
  PollTarget,
  | "id"
  | "taskStatus"
  | "taskJson"
  | "queuePosition"
  | "estimatedCompletionAt"
  | "faultCount"
  | "rejectCode"
  | "rejectCount"
  | "nextPollAt"
  | "dueAt"
  | "active"
  | "watchesBehind"
>;

/** Writes the outcome fields of a poll (not the status: that is the caller's business). */
export function updateTarget(db: Db, id: number, values: Partial<PollTarget>): void {
  db.update(pollTargets).set(values).where(eq(pollTargets.id, id)).run();
}
