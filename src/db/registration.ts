import { and, eq, sql } from "drizzle-orm";
import type { WatchEventType } from "../domain/events.js";
import { newId } from "../domain/ids.js";
import { canonicalJson } from "../domain/json.js";
import { type Db, preparedOnce, transaction } from "./client.js";
import { pollTargets, tenants, watches } from "./schema.js";
import { recountActiveWatches } from "./tenants.js";
import { getWatch, type WatchWithTask } from "./watches.js";

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

const p = sql.placeholder;

/** POST /v1/watches runs these for every request: prepared once, each on an index. */
const statements = preparedOnce((db: Db) => ({
  findActive: db
    .select({ id: watches.id, events: watches.events, metadata: watches.metadata })
    .from(watches)
    .where(
      sql`${watches.tenantId} = ${p("tenantId")} AND ${watches.taskId} = ${p("taskId")}
        AND ${watches.callbackUrl} = ${p("callbackUrl")} AND ${watches.status} = 'active'`,
    )
    .prepare(),
  activeCount: db
    .select({ n: tenants.activeWatches })
    .from(tenants)
    .where(eq(tenants.id, p("tenantId")))
    .prepare(),
  // Creates the tenant on first use, counts the new watch, and (re)stores the tenant's API key,
  // encrypted, for the scheduler. The ciphertext replaces the stored one (the same key: the tenant is
  // its hash), so a blob that no longer decrypts (ENCRYPTION_KEY replaced) heals on the tenant's next
  // registration.
  storeKey: db
    .insert(tenants)
    .values({ id: p("tenantId"), apiKeyEnc: p("apiKeyEnc"), activeWatches: 1, createdAt: p("now") })
    .onConflictDoUpdate({
      target: tenants.id,
      set: {
        apiKeyEnc: sql`excluded.api_key_enc`,
        activeWatches: sql`${tenants.activeWatches} + 1`,
      },
    })
    .prepare(),
  findTarget: db
    .select()
    .from(pollTargets)
    .where(and(eq(pollTargets.tenantId, p("tenantId")), eq(pollTargets.taskId, p("taskId"))))
    .prepare(),
  insertTarget: db
    .insert(pollTargets)
    .values({
      tenantId: p("tenantId"),
      taskId: p("taskId"),
      active: true,
      nextPollAt: p("now"),
      dueAt: p("now"),
      createdAt: p("now"),
    })
    .returning({ id: pollTargets.id })
    .prepare(),
  wakeTarget: db
    .update(pollTargets)
    .set({
      active: true,
      nextPollAt: sql`${p("nextPollAt")}`,
      dueAt: sql`${p("dueAt")}`,
      faultCount: sql`${p("faultCount")}`,
      rejectCode: sql`${p("rejectCode")}`,
      rejectCount: sql`${p("rejectCount")}`,
      // The new watch has seen nothing yet: the next answer is shown to every watch.
      watchesBehind: true,
    })
    .where(eq(pollTargets.id, p("id")))
    .prepare(),
  insertWatch: db
    .insert(watches)
    .values({
      id: p("id"),
      tenantId: p("tenantId"),
      pollTargetId: p("pollTargetId"),
      taskId: p("taskId"),
      callbackUrl: p("callbackUrl"),
      events: p("events"),
      metadata: p("metadata"),
      status: "active",
      createdAt: p("now"),
      expiresAt: p("expiresAt"),
    })
    .prepare(),
}));

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
  const s = statements(db);
  const events = JSON.stringify(input.events);
  const metadata = input.metadata === null ? null : canonicalJson(input.metadata);
  const watchOf = (id: string): WatchWithTask => {
    const watch = getWatch(db, input.tenantId, id);
    if (!watch) throw new Error(`watch ${id} vanished inside its transaction`);
    return watch;
  };
  return transaction(db, () => {
    const existing = s.findActive.get({
      tenantId: input.tenantId,
      taskId: input.taskId,
      callbackUrl: input.callbackUrl,
    });
    if (existing) {
      if (existing.events !== events || existing.metadata !== metadata) {
        return { kind: "conflict", watchId: existing.id };
      }
      return { kind: "existing", watch: watchOf(existing.id) };
    }
    // At the limit, the rows are counted to be sure (see recountActiveWatches).
    const active = s.activeCount.get({ tenantId: input.tenantId })?.n ?? 0;
    if (active >= opts.maxActive && recountActiveWatches(db, input.tenantId) >= opts.maxActive) {
      return { kind: "limit", limit: opts.maxActive };
    }

    s.storeKey.run({ tenantId: input.tenantId, apiKeyEnc: input.apiKeyEnc, now });
    const pollTargetId = wakeTarget(db, input.tenantId, input.taskId, now, opts.minIntervalMs);
    const id = newId("wch", now);
    s.insertWatch.run({
      id,
      tenantId: input.tenantId,
      pollTargetId,
      taskId: input.taskId,
      callbackUrl: input.callbackUrl,
      events,
      metadata,
      now,
      expiresAt: input.expiresAt,
    });
    return { kind: "created", watch: watchOf(id) };
  });
}

/** The tenant's poll target for the task, created or made due now (respecting the per-task floor). */
function wakeTarget(
  db: Db,
  tenantId: string,
  taskId: string,
  now: number,
  minIntervalMs: number,
): number {
  const s = statements(db);
  const target = s.findTarget.get({ tenantId, taskId });
  if (!target) {
    const created = s.insertTarget.get({ tenantId, taskId, now });
    if (!created) throw new Error("poll target insert returned nothing");
    return created.id;
  }
  const inFlight = target.leaseUntil !== null && target.leaseUntil > now;
  // In flight: its answer is recorded for every active watch, this one included.
  const earliest = inFlight
    ? target.nextPollAt
    : Math.max(now, (target.lastPolledAt ?? 0) + minIntervalMs);
  const nextPollAt = target.active ? Math.min(target.nextPollAt, earliest) : earliest;
  s.wakeTarget.run(
    target.active
      ? { ...target, nextPollAt, dueAt: Math.min(target.dueAt, nextPollAt) }
      : {
          ...target,
          nextPollAt,
          dueAt: nextPollAt,
          faultCount: 0,
          rejectCode: null,
          rejectCount: 0,
        },
  );
  return target.id;
}
