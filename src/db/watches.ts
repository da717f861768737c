import { and, desc, eq, getTableColumns, inArray, lt, type SQL, sql } from "drizzle-orm";
import { type Db, preparedOnce, transaction } from "./client.js";
import { pollTargets, type Watch, type WatchStatus, watches } from "./schema.js";
import { watchesEnded } from "./tenants.js";

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

const byId = preparedOnce((db: Db) => ({
  ofTenant: selectWatches(db)
    .where(
      and(eq(watches.id, sql.placeholder("id")), eq(watches.tenantId, sql.placeholder("tenantId"))),
    )
    .prepare(),
  any: selectWatches(db)
    .where(eq(watches.id, sql.placeholder("id")))
    .prepare(),
}));

/** One watch with its task's last known state; `tenantId` null (admin) finds any tenant's. */
export function getWatch(db: Db, tenantId: string | null, id: string): WatchWithTask | undefined {
  const s = byId(db);
  return tenantId === null ? s.any.get({ id }) : s.ofTenant.get({ id, tenantId });
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
  const endedByTenant = new Map<string, number>();
  for (const w of ended) endedByTenant.set(w.tenantId, (endedByTenant.get(w.tenantId) ?? 0) + 1);
  for (const [tenantId, count] of endedByTenant) watchesEnded(db, tenantId, count);
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
