import { eq, sql } from "drizzle-orm";
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
 * Counts `count` of the tenant's watches out of the active ones. The key is kept only while a watch
 * needs it: it is forgotten once the tenant has no active watch left.
 */
export function watchesEnded(db: Db, tenantId: string, count: number): void {
  db.update(tenants)
    .set({
      activeWatches: sql`max(0, ${tenants.activeWatches} - ${count})`,
      apiKeyEnc: sql`CASE WHEN ${tenants.activeWatches} - ${count} <= 0 THEN NULL ELSE ${tenants.apiKeyEnc} END`,
    })
    .where(eq(tenants.id, tenantId))
    .run();
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

/** The tenant's signing secrets as stored (encrypted), or undefined when it has none yet. */
export function storedSigningSecrets(db: Db, tenantId: string) {
  const row = secretColumns(db).get({ id: tenantId });
  return row?.current
    ? { current: row.current, previous: row.previous, previousUntil: row.previousUntil }
    : undefined;
}
