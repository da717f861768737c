import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { and, eq, sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { leases } from "./schema.js";

/** The holders this process has made: a holder with our pid that is not among them is an earlier run. */
const ours = new Set<string>();

/**
 * A holder names its process: `host:pid:random`. The random part tells two runs of one pid apart
 * (a container restarted as pid 1); host and pid let a restarted process see that the holder died.
 */
export function leaseHolder(): string {
  const holder = `${hostname()}:${process.pid}:${randomUUID()}`;
  ours.add(holder);
  return holder;
}

/**
 * True when `holder` is a process of this host that no longer runs: its pid is gone, or it is our
 * own pid but not a holder this process made (an earlier run of this pid: a container restarted).
 * Holders of other hosts, or unreadable ones, are never judged dead: their lease must run out.
 */
export function holderIsDead(holder: string): boolean {
  const parts = holder.split(":");
  const pid = Number(parts.at(-2));
  const host = parts.slice(0, -2).join(":");
  if (ours.has(holder) || host !== hostname() || !Number.isSafeInteger(pid) || pid <= 0)
    return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    // EPERM: the pid runs, as another user's process; only ESRCH says nobody has it.
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

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

/**
 * Takes the lease from a holder that died on this host (SIGKILL, OOM) without waiting for it to run
 * out, so a restarted process goes on at once. Returns the dead holder, or null when the lease is
 * held by a living (or unknown) process.
 */
export function takeOverDeadLease(
  db: Db,
  name: string,
  holder: string,
  now: number,
  ttlMs: number,
): string | null {
  const current = db.select().from(leases).where(eq(leases.name, name)).get();
  if (!current || !holderIsDead(current.holder)) return null;
  const result = db
    .update(leases)
    .set({ holder, expiresAt: now + ttlMs })
    .where(and(eq(leases.name, name), eq(leases.holder, current.holder)))
    .run();
  return result.changes > 0 ? current.holder : null;
}

export function releaseLease(db: Db, name: string, holder: string): void {
  db.delete(leases)
    .where(and(eq(leases.name, name), eq(leases.holder, holder)))
    .run();
}
