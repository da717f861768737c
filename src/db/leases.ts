import { and, eq, sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { leases } from "./schema.js";

/**
 * Takes or renews the named lease for `holder`: it succeeds when the lease is free, expired or
 * already ours. One scheduler per database file; a standby takes over once the holder stops renewing.
 */
export function acquireLease(
  db: Db,
  name: string,
  holder: string,
  now: number,
  ttlMs: number,
): boolean {
  const result = db
    .insert(leases)
    .values({ name, holder, expiresAt: now + ttlMs })
    .onConflictDoUpdate({
      target: leases.name,
      set: { holder, expiresAt: now + ttlMs },
      setWhere: sql`${leases.holder} = ${holder} OR ${leases.expiresAt} <= ${now}`,
    })
    .run();
  return result.changes > 0;
}

export function releaseLease(db: Db, name: string, holder: string): void {
  db.delete(leases)
    .where(and(eq(leases.name, name), eq(leases.holder, holder)))
    .run();
}
