import { eq, type SQL, sql } from "drizzle-orm";
import { generateSigningSecret } from "../delivery/sign.js";
import { decryptSecret, encryptSecret } from "../domain/crypto.js";
import { type Db, preparedOnce } from "./client.js";
import { tenants } from "./schema.js";

/** How long the secret before a rotation keeps signing webhooks beside the new one. */
export const ROTATION_OVERLAP_MS = 24 * 60 * 60 * 1000;

export function tenantApiKey(db: Db, key: Buffer, tenantId: string): string | null {
  const row = db
    .select({ apiKeyEnc: tenants.apiKeyEnc })
    .from(tenants)
    .where(eq(tenants.id, tenantId))
    .get();
  return row?.apiKeyEnc ? decryptSecret(key, row.apiKeyEnc) : null;
}

/**
 * A tenant's active watches counted from the rows, through its poll targets (no index by tenant and
 * status is kept). Used where tenants.active_watches must be right: a process of an older release on
 * the same file (a rolling restart, a rollback) creates and ends watches without keeping the count.
 */
const countedActive = (tenantId: SQL) =>
  sql`(SELECT count(*) FROM poll_targets pt JOIN watches w ON w.poll_target_id = pt.id
    AND w.status = 'active' WHERE pt.tenant_id = ${tenantId})`;

/** Counts the tenant's active watches from the rows, and stores that count. */
export function recountActiveWatches(db: Db, tenantId: string): number {
  const row = db
    .update(tenants)
    .set({ activeWatches: countedActive(sql`${tenantId}`) })
    .where(eq(tenants.id, tenantId))
    .returning({ n: tenants.activeWatches })
    .get();
  return row?.n ?? 0;
}

/**
 * Every tenant's count from the rows, and the keys no active watch needs any more forgotten: run when
 * this process takes the scheduler over, so that counts left wrong by an older release are set right.
 */
export function recountAllActiveWatches(db: Db): void {
  db.update(tenants)
    .set({ activeWatches: countedActive(sql`${tenants.id}`) })
    .run();
  db.update(tenants)
    .set({ apiKeyEnc: null })
    .where(sql`${tenants.activeWatches} = 0 AND ${tenants.apiKeyEnc} IS NOT NULL`)
    .run();
}

/**
 * Counts `count` of the tenant's watches out of the active ones. The key is kept only while a watch
 * needs it: when the count says none is left, the rows are counted to be sure before it is forgotten.
 */
export function watchesEnded(db: Db, tenantId: string, count: number): void {
  const row = db
    .update(tenants)
    .set({ activeWatches: sql`max(0, ${tenants.activeWatches} - ${count})` })
    .where(eq(tenants.id, tenantId))
    .returning({ n: tenants.activeWatches })
    .get();
  if (row === undefined || row.n > 0) return;
  if (recountActiveWatches(db, tenantId) === 0) {
    db.update(tenants).set({ apiKeyEnc: null }).where(eq(tenants.id, tenantId)).run();
  }
}

export interface SigningSecrets {
  current: string;
  createdAt: number;
  /** The pre-rotation secret while it is still within its overlap window. */
  previous: string | null;
}

/** The tenant's signing secrets, creating the tenant and its first secret on first use. */
export function signingSecrets(db: Db, key: Buffer, tenantId: string, now: number): SigningSecrets {
  const row = db.select().from(tenants).where(eq(tenants.id, tenantId)).get();
  if (row?.signingSecretEnc && row.signingSecretCreatedAt !== null) {
    const previous =
      row.previousSecretEnc && (row.previousSecretExpiresAt ?? 0) > now
        ? decryptSecret(key, row.previousSecretEnc)
        : null;
    return {
      current: decryptSecret(key, row.signingSecretEnc),
      createdAt: row.signingSecretCreatedAt,
      previous,
    };
  }
  const secret = generateSigningSecret();
  const values = { signingSecretEnc: encryptSecret(key, secret), signingSecretCreatedAt: now };
  if (row) db.update(tenants).set(values).where(eq(tenants.id, tenantId)).run();
  else
    db.insert(tenants)
      .values({ id: tenantId, createdAt: now, ...values })
      .run();
  return { current: secret, createdAt: now, previous: null };
}

/** A new secret; the old one keeps signing beside it for ROTATION_OVERLAP_MS. */
export function rotateSigningSecret(
  db: Db,
  key: Buffer,
  tenantId: string,
  now: number,
): SigningSecrets {
  const before = signingSecrets(db, key, tenantId, now);
  const secret = generateSigningSecret();
  db.update(tenants)
    .set({
      signingSecretEnc: encryptSecret(key, secret),
      signingSecretCreatedAt: now,
      previousSecretEnc: encryptSecret(key, before.current),
      previousSecretExpiresAt: now + ROTATION_OVERLAP_MS,
    })
    .where(eq(tenants.id, tenantId))
    .run();
  return { current: secret, createdAt: now, previous: before.current };
}

const secretColumns = preparedOnce((db: Db) =>
  db
    .select({
      current: tenants.signingSecretEnc,
      previous: tenants.previousSecretEnc,
      previousUntil: tenants.previousSecretExpiresAt,
    })
    .from(tenants)
    .where(eq(tenants.id, sql.placeholder("id")))
    .prepare(),
);

export interface StoredSecrets {
  current: string;
  previous: string | null;
  previousUntil: number | null;
}

/** The tenant's signing secrets as stored (encrypted), or undefined when it has none yet. */
export function storedSigningSecrets(db: Db, tenantId: string): StoredSecrets | undefined {
  const row = secretColumns(db).get({ id: tenantId });
  return row?.current
    ? { current: row.current, previous: row.previous, previousUntil: row.previousUntil }
    : undefined;
}
