import { and, desc, eq, getTableColumns, inArray, lt, type SQL, sql } from "drizzle-orm";
import type { WatchEventType } from "../domain/events.js";
import { newId } from "../domain/ids.js";
import { canonicalJson } from "../domain/json.js";
import { type Db, transaction } from "./client.js";
import { type PollTarget, pollTargets, type Watch, type WatchStatus, watches } from "./schema.js";
import { forgetKeyIfIdle, storeTenantKey } from "./tenants.js";

export interface WatchWithTask extends Watch {
  taskStatus: string | null;
  taskJson: string | null;
  lastPolledAt: number | null;
}

const withTask = {
  taskStatus: pollTargets.taskStatus,
  taskJson: pollTargets.taskJson,
  lastPolledAt: pollTargets.lastPolledAt,
};

function selectWatches(db: Db) {
  return db
    .select({ ...getTableColumns(watches), ...withTask })
    .from(watches)
    .innerJoin(pollTargets, eq(pollTargets.id, watches.pollTargetId));
}

export interface Registration {
  tenantId: string;
  /** The tenant's API key, encrypted: stored only if the watch is created. */
  apiKeyEnc: string;
  taskId: string;
  callbackUrl: string;
  events: WatchEventType[];
  metadata: Record<string, unknown> | null;
  expiresAt: number;
}

export type RegisterOutcome =
  | { kind: "created"; watch: WatchWithTask }
  | { kind: "existing"; watch: WatchWithTask }
  | { kind: "conflict"; watchId: string }
  | { kind: "limit"; limit: number };

/**
 * Registers a watch in one transaction: an identical active registration is returned as is, a
 * different one is a conflict, and the tenant's poll target for the task is created or woken so that
 * the first poll goes out right away (never sooner than `minIntervalMs` after the last one).
 */
export function registerWatch(
  db: Db,
  input: Registration,
  opts: { now: number; minIntervalMs: number; maxActive: number },
): RegisterOutcome {
  const { now } = opts;
  return transaction(db, () => {
    const existing = db
      .select()
      .from(watches)
      .where(
        and(
          eq(watches.tenantId, input.tenantId),
          eq(watches.taskId, input.taskId),
          eq(watches.callbackUrl, input.callbackUrl),
          sql`${watches.status} = 'active'`,
        ),
      )
      .get();
    if (existing) {
      const same =
        existing.events === JSON.stringify(input.events) &&
        existing.metadata === (input.metadata === null ? null : canonicalJson(input.metadata));
      if (!same) return { kind: "conflict", watchId: existing.id };
      return { kind: "existing", watch: mustGetWatch(db, input.tenantId, existing.id) };
    }

    const active = countActive(db, input.tenantId);
    if (active >= opts.maxActive) return { kind: "limit", limit: opts.maxActive };

    storeTenantKey(db, input.tenantId, input.apiKeyEnc, now);
    const target = wakeTarget(db, input.tenantId, input.taskId, now, opts.minIntervalMs);
    const id = newId("wch", now);
    db.insert(watches)
      .values({
        id,
        tenantId: input.tenantId,
        pollTargetId: target.id,
        taskId: input.taskId,
        callbackUrl: input.callbackUrl,
        events: JSON.stringify(input.events),
        metadata: input.metadata === null ? null : canonicalJson(input.metadata),
        status: "active",
        createdAt: now,
        expiresAt: input.expiresAt,
      })
      .run();
    return { kind: "created", watch: mustGetWatch(db, input.tenantId, id) };
  });
}

function countActive(db: Db, tenantId: string): number {
  const row = db
    .select({ n: sql<number>`count(*)` })
    .from(watches)
    .where(and(eq(watches.tenantId, tenantId), sql`${watches.status} = 'active'`))
    .get();
  return row?.n ?? 0;
}

/** The tenant's poll target for the task, created or made due now (respecting the per-task floor). */
function wakeTarget(
  db: Db,
  tenantId: string,
  taskId: string,
  now: number,
  minIntervalMs: number,
): PollTarget {
  const target = db
    .select()
    .from(pollTargets)
    .where(and(eq(pollTargets.tenantId, tenantId), eq(pollTargets.taskId, taskId)))
    .get();
  if (!target) {
    const [created] = db
      .insert(pollTargets)
      .values({ tenantId, taskId, active: true, nextPollAt: now, dueAt: now, createdAt: now })
      .returning()
      .all();
    if (!created) throw new Error("poll target insert returned nothing");
    return created;
  }
  const inFlight = target.leaseUntil !== null && target.leaseUntil > now;
  if (inFlight) {
    // The answer in flight is recorded for every active watch, this one included.
    if (!target.active)
      db.update(pollTargets).set({ active: true }).where(eq(pollTargets.id, target.id)).run();
    return target;
  }
  const earliest = Math.max(now, (target.lastPolledAt ?? 0) + minIntervalMs);
  const nextPollAt = target.active ? Math.min(target.nextPollAt, earliest) : earliest;
  const woken = target.active
    ? { nextPollAt, dueAt: Math.min(target.dueAt, nextPollAt) }
    : {
        active: true,
        nextPollAt,
        dueAt: nextPollAt,
        faultCount: 0,
        rejectCode: null,
        rejectCount: 0,
      };
  db.update(pollTargets).set(woken).where(eq(pollTargets.id, target.id)).run();
  return { ...target, ...woken };
}

export function getWatch(db: Db, tenantId: string | null, id: string): WatchWithTask | undefined {
  const where =
    tenantId === null
      ? eq(watches.id, id)
      : and(eq(watches.id, id), eq(watches.tenantId, tenantId));
  return selectWatches(db).where(where).get();
}

function mustGetWatch(db: Db, tenantId: string, id: string): WatchWithTask {
  const watch = getWatch(db, tenantId, id);
  if (!watch) throw new Error(`watch ${id} vanished inside its transaction`);
  return watch;
}

export interface WatchFilter {
  tenantId?: string;
  /** Admin filter: tenants whose id starts with this label. */
  tenantPrefix?: string;
  status?: WatchStatus;
  taskId?: string;
  /** The callback URL's host, with or without its port. */
  callbackHost?: string;
  /** Exclusive: only ids older than this (newest first paging). */
  before?: string;
  limit: number;
}

/** Newest first; fetches one extra row to know whether there is a next page. */
export function listWatches(db: Db, filter: WatchFilter): { rows: WatchWithTask[]; more: boolean } {
  const conditions: SQL[] = [];
  if (filter.tenantId !== undefined) conditions.push(eq(watches.tenantId, filter.tenantId));
  if (filter.tenantPrefix !== undefined) {
    conditions.push(
      sql`substr(${watches.tenantId}, 1, ${filter.tenantPrefix.length}) = ${filter.tenantPrefix}`,
    );
  }
  if (filter.status !== undefined) conditions.push(eq(watches.status, filter.status));
  if (filter.taskId !== undefined) conditions.push(eq(watches.taskId, filter.taskId));
  if (filter.callbackHost !== undefined) {
    // "example.com" also finds "example.com:8443": operators search by name, not by port.
    const host = filter.callbackHost;
    conditions.push(
      sql`(${callbackHostSql} = ${host} OR substr(${callbackHostSql}, 1, ${host.length + 1}) = ${`${host}:`})`,
    );
  }
  if (filter.before !== undefined) conditions.push(lt(watches.id, filter.before));
  const rows = selectWatches(db)
    .where(and(...conditions))
    .orderBy(desc(watches.id))
    .limit(filter.limit + 1)
    .all();
  return { rows: rows.slice(0, filter.limit), more: rows.length > filter.limit };
}

/** The host of a stored (normalized, so lower-case) callback URL, in SQL. */
const callbackHostSql = sql`lower(substr(
  substr(${watches.callbackUrl}, instr(${watches.callbackUrl}, '://') + 3),
  1,
  instr(substr(${watches.callbackUrl}, instr(${watches.callbackUrl}, '://') + 3) || '/', '/') - 1
))`;

/** Ends the given active watches and stops polling targets that no active watch needs any more. */
export function endWatches(
  db: Db,
  ids: readonly string[],
  status: Exclude<WatchStatus, "active">,
  endReason: string | null,
  now: number,
): void {
  if (ids.length === 0) return;
  const ended = db
    .update(watches)
    .set({ status, endReason, endedAt: now })
    .where(and(inArray(watches.id, [...ids]), sql`${watches.status} = 'active'`))
    .returning({ tenantId: watches.tenantId, pollTargetId: watches.pollTargetId })
    .all();
  const targetIds = [...new Set(ended.map((w) => w.pollTargetId))];
  if (targetIds.length > 0) {
    db.update(pollTargets)
      .set({ active: false })
      .where(
        and(
          inArray(pollTargets.id, targetIds),
          sql`NOT EXISTS (SELECT 1 FROM ${watches} WHERE ${watches.pollTargetId} = ${pollTargets.id} AND ${watches.status} = 'active')`,
        ),
      )
      .run();
  }
  for (const tenantId of new Set(ended.map((w) => w.tenantId))) forgetKeyIfIdle(db, tenantId);
}

/** DELETE: an active watch becomes `cancelled`; an ended one is left as it is. */
export function cancelWatch(
  db: Db,
  tenantId: string,
  id: string,
  now: number,
): WatchWithTask | undefined {
  return transaction(db, () => {
    const watch = getWatch(db, tenantId, id);
    if (!watch) return undefined;
    if (watch.status === "active") endWatches(db, [id], "cancelled", null, now);
    return getWatch(db, tenantId, id);
  });
}
