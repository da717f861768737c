import { inArray, sql } from "drizzle-orm";
import type { Clock } from "./clock.js";
import { type Db, transaction } from "./db/client.js";
import { deliveries, deliveryAttempts, events, pollTargets, watches } from "./db/schema.js";
import type { Logger } from "./log.js";
import { Loop } from "./loop.js";

const DAY_MS = 24 * 60 * 60 * 1000;
/** Small batches: each is one short transaction, so the scheduler and deliverer never wait long. */
export const RETENTION_BATCH = 200;
const INTERVAL_MS = 60_000;

/**
 * Deletes up to `limit` watches that ended before the cutoff, with their events, deliveries and
 * attempts, and the poll targets no watch refers to any more. Returns how many watches went.
 */
export function purgeBatch(db: Db, cutoff: number, limit: number): number {
  return transaction(db, () => {
    const ids = db
      .select({ id: watches.id })
      .from(watches)
      .where(sql`${watches.status} <> 'active' AND ${watches.endedAt} < ${cutoff}`)
      .orderBy(watches.endedAt)
      .limit(limit)
      .all()
      .map((w) => w.id);
    if (ids.length === 0) return 0;
    const deliveryIds = db
      .select({ id: deliveries.id })
      .from(deliveries)
      .where(inArray(deliveries.watchId, ids))
      .all()
      .map((d) => d.id);
    if (deliveryIds.length > 0) {
      db.delete(deliveryAttempts).where(inArray(deliveryAttempts.deliveryId, deliveryIds)).run();
      db.delete(deliveries).where(inArray(deliveries.id, deliveryIds)).run();
    }
    db.delete(events).where(inArray(events.watchId, ids)).run();
    const targets = db
      .delete(watches)
      .where(inArray(watches.id, ids))
      .returning({ targetId: watches.pollTargetId })
      .all()
      .map((w) => w.targetId);
    db.delete(pollTargets)
      .where(
        sql`${inArray(pollTargets.id, [...new Set(targets)])} AND ${pollTargets.active} = 0
          AND NOT EXISTS (SELECT 1 FROM ${watches} WHERE ${watches.pollTargetId} = ${pollTargets.id})`,
      )
      .run();
    return ids.length;
  });
}

/** Purges ended watches older than RETENTION_DAYS once a minute, batch by batch, yielding in between. */
export class Retention {
  private readonly loop: Loop;

  constructor(
    private readonly deps: { db: Db; clock: Clock; logger: Logger; retentionDays: number },
  ) {
    this.loop = new Loop({
      name: "retention",
      logger: deps.logger,
      tick: () => this.tick(),
      maxIdleMs: INTERVAL_MS,
      errorDelayMs: INTERVAL_MS,
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  async tick(): Promise<number> {
    const cutoff = this.deps.clock.now() - this.deps.retentionDays * DAY_MS;
    let purged = 0;
    for (;;) {
      const n = purgeBatch(this.deps.db, cutoff, RETENTION_BATCH);
      purged += n;
      if (n < RETENTION_BATCH) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (purged > 0)
      this.deps.logger.info(
        { purged, retentionDays: this.deps.retentionDays },
        "retention: purged ended watches",
      );
    return INTERVAL_MS;
  }
}
