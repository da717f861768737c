import type { Db } from "../../src/db/client.js";
import { encryptSecret, hashApiKey } from "../../src/domain/crypto.js";
import { normalizeEventTypes } from "../../src/domain/events.js";
import { newId } from "../../src/domain/ids.js";

export interface SeedOptions {
  /** Tenants; task i belongs to keys[i % keys.length] (the same rule as bench/servers/upstream.ts). */
  keys: readonly string[];
  /** Poll targets, one active watch each. */
  count: number;
  taskPrefix: string;
  callbackUrl: string;
  encryptionKey: Buffer;
  now: number;
  /** `processing`: a steady state (polled before, the watch has seen it); null: never polled. */
  status: "processing" | null;
  /** Targets are due at `now - random() * dueSpreadMs`: all due, in a shuffled order. */
  dueSpreadMs: number;
  random: () => number;
  /** Watch lifetime from `now`. */
  ttlMs?: number;
}

/**
 * Seeds tenants, poll targets and watches with raw SQL in one transaction: 100,000 watches in a few
 * seconds, where the API would take minutes. The rows are those registration and polling write.
 */
export function seedWatches(db: Db, o: SeedOptions): void {
  const sqlite = db.$client;
  const insertTenant = sqlite.prepare(
    "INSERT OR IGNORE INTO tenants (id, api_key_enc, created_at) VALUES (?, ?, ?)",
  );
  const insertTarget = sqlite.prepare(
    `INSERT INTO poll_targets (tenant_id, task_id, active, task_status, task_json, next_poll_at, due_at,
       last_polled_at, fault_count, reject_count, created_at)
     VALUES (?, ?, 1, ?, ?, ?, ?, ?, 0, 0, ?)`,
  );
  const insertWatch = sqlite.prepare(
    `INSERT INTO watches (id, tenant_id, poll_target_id, task_id, callback_url, events, metadata, status,
       last_status, sequence, created_at, expires_at)
     VALUES (?, ?, ?, ?, ?, ?, NULL, 'active', ?, ?, ?, ?)`,
  );
  const events = JSON.stringify(normalizeEventTypes(undefined));
  const tenantIds = o.keys.map((k) => hashApiKey(k));
  const startedAt = new Date(o.now - 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
  sqlite.transaction(() => {
    o.keys.forEach((key, i) => {
      insertTenant.run(tenantIds[i], encryptSecret(o.encryptionKey, key), o.now);
    });
    for (let i = 0; i < o.count; i += 1) {
      const tenantId = tenantIds[i % tenantIds.length] ?? "";
      const taskId = `${o.taskPrefix}${i}`;
      const due = Math.floor(o.now - o.random() * o.dueSpreadMs);
      const json =
        o.status === null
          ? null
          : JSON.stringify({
              task_id: taskId,
              status: o.status,
              started_at: startedAt,
              created_at: startedAt,
            });
      const target = insertTarget.run(
        tenantId,
        taskId,
        o.status,
        json,
        due,
        due,
        o.status === null ? null : due - 5_000,
        o.now,
      );
      insertWatch.run(
        newId("wch", o.now),
        tenantId,
        target.lastInsertRowid,
        taskId,
        o.callbackUrl,
        events,
        o.status,
        o.status === null ? 0 : 1,
        o.now,
        o.now + (o.ttlMs ?? 86_400_000),
      );
    }
    sqlite
      .prepare(
        `UPDATE tenants SET active_watches = (SELECT count(*) FROM watches
           WHERE watches.tenant_id = tenants.id AND watches.status = 'active')`,
      )
      .run();
  })();
}
