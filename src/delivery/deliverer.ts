import type { Clock } from "../clock.js";
import type { Config } from "../config.js";
import { type Db, inSavepoint, type Settled, settled, transaction } from "../db/client.js";
import {
  type DeliveryStatements,
  type DueDelivery,
  deliveryStatements,
} from "../db/delivery-queue.js";
import { type StoredSecrets, signingSecrets, storedSigningSecrets } from "../db/tenants.js";
import { endWatches } from "../db/watches.js";
import { decryptSecret } from "../domain/crypto.js";
import type { Logger } from "../log.js";
import { gatherWait, Loop } from "../loop.js";
import type { Metrics } from "../metrics.js";
import { nextAttemptDelay } from "./retry.js";
import type { Attempt, Sender } from "./sender.js";

export interface DelivererOptions {
  concurrency: number;
  timeoutMs: number;
  /** Delays before each attempt, from the previous one (DELIVERY_RETRY_SCHEDULE). */
  schedule: readonly number[];
  batchSize?: number;
}

/** The deliverer's settings from the configuration (SPEC §7). */
export function delivererOptions(config: Config): DelivererOptions {
  return {
    concurrency: config.DELIVERY_CONCURRENCY,
    timeoutMs: config.DELIVERY_TIMEOUT_MS,
    schedule: config.DELIVERY_RETRY_SCHEDULE,
  };
}

export interface DelivererDeps {
  db: Db;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  sender: Sender;
  encryptionKey: Buffer;
  options: DelivererOptions;
  random?: () => number;
}

interface Finished {
  delivery: DueDelivery;
  /** The claim's lease: the fence that tells whether the delivery is still ours to update. */
  leaseUntil: number;
  attempt: Attempt;
}

const MAX_IDLE_MS = 1000;

/**
 * The deliverer's gathering window (`gatherWait`), longer than the scheduler's 2 ms: its attempts
 * queue in undici behind their host's sockets (DELIVERY_CONCURRENCY 64 over 16 by default), so while
 * it waits those sockets still have work, and one commit records more attempts. Webhooks figure,
 * alternating pairs: 2 ms against 5 ms, median ratio 0.513 → 0.531 (fifth session); 5 ms against
 * 10 ms, after the sender moved to `dispatch`, 0.680 → 0.753 (nine pairs; sixth session). Where every
 * attempt has a socket of its own (many hosts), a freed slot waits at most this long, and only while
 * fewer than half of the slots are free: at most 10 ms against attempts of tens to hundreds of ms.
 * The scheduler gained nothing from 5 ms: each of its requests has a socket of its own, so a slot
 * that waits is idle.
 */
export const DELIVERY_GATHER_MS = 10;

/**
 * Sends the outbox. Each tick records finished attempts in one transaction, then claims due
 * deliveries (in order per watch) up to the free concurrency, leases them past the time-out (so a
 * crash sends them again, same `webhook-id`) and sends them. Success is a 2xx; 410 ends the watch;
 * anything else is retried on the schedule until it runs out and the delivery is `failed`.
 */
export class Deliverer {
  private readonly stmts: DeliveryStatements;
  private readonly inFlight = new Set<Promise<void>>();
  /** Delivery id → its claim's lease. */
  private readonly inFlightIds = new Map<string, number>();
  private finished: Finished[] = [];
  /** When the last tick recorded and claimed (see `gatherWait`). */
  private claimedAt = -Infinity;
  private readonly random: () => number;
  private readonly loop: Loop;
  /** Signing secrets by ciphertext. */
  private readonly plaintexts = new Map<string, string>();

  constructor(private readonly deps: DelivererDeps) {
    this.stmts = deliveryStatements(deps.db);
    this.random = deps.random ?? Math.random;
    this.loop = new Loop({
      name: "deliverer",
      logger: deps.logger,
      tick: () => this.tick(),
      onError: () => deps.metrics.loopErrors.inc({ loop: "deliverer" }),
      maxIdleMs: MAX_IDLE_MS,
    });
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
    await this.idle();
  }

  notify(): void {
    this.loop.notify();
  }

  get running(): boolean {
    return this.loop.running;
  }

  /** Shutdown past its grace period: attempts still in flight are due again at once after a restart. */
  release(): void {
    this.flush();
    const claims = [...this.inFlightIds];
    const now = this.deps.clock.now();
    transaction(this.deps.db, () => {
      for (const [id, leaseUntil] of claims) this.stmts.release(id, leaseUntil, now);
    });
    this.inFlightIds.clear();
    this.finished = [];
  }

  /** Waits for every attempt in flight and records them (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    this.flush();
  }

  async tick(): Promise<number> {
    const now = this.deps.clock.now();
    const free = this.deps.options.concurrency - this.inFlight.size;
    if (free <= 0) {
      this.flush();
      return MAX_IDLE_MS;
    }
    const wait = gatherWait(
      free,
      this.deps.options.concurrency,
      now - this.claimedAt,
      DELIVERY_GATHER_MS,
    );
    if (wait !== null) return wait;
    this.claimedAt = now;
    const limit = Math.min(free, this.deps.options.batchSize ?? 200);
    const leaseUntil = now + this.deps.options.timeoutMs + 5000;
    const batch = this.finished;
    this.finished = [];
    let tx: {
      outcomes: string[];
      claimed: DueDelivery[];
      secrets: Map<string, string[] | null>;
      earliest: number | null;
    };
    try {
      // One transaction per tick: the attempts that finished (which may free a watch's next event),
      // then the deliveries that start, their tenants' secrets and the next due time. Reads made
      // inside it cost a fraction of reads made alone, which each open a read transaction.
      tx = transaction(this.deps.db, () => {
        const outcomes = batch.map((f) => this.record(f));
        const claimed = this.stmts.due(now, limit);
        const secrets = new Map<string, string[] | null>();
        for (const row of claimed) {
          this.stmts.lease(row.id, leaseUntil);
          if (!secrets.has(row.tenantId))
            secrets.set(row.tenantId, this.secretsOf(row.tenantId, now));
        }
        const earliest = claimed.length === limit ? null : this.stmts.earliestDue();
        return { outcomes, claimed, secrets, earliest };
      });
    } catch (err) {
      this.finished = batch.concat(this.finished);
      throw err;
    }
    for (const outcome of tx.outcomes) this.deps.metrics.deliveries.inc({ outcome });
    for (const delivery of tx.claimed) {
      const secrets = tx.secrets.get(delivery.tenantId);
      // Unreadable secrets: the delivery stays leased and is tried again once the lease runs out.
      if (secrets) this.dispatch(delivery, leaseUntil, secrets, now);
    }
    if (tx.claimed.length === limit) return 0;
    const { earliest } = tx;
    return earliest === null ? MAX_IDLE_MS : Math.min(MAX_IDLE_MS, Math.max(0, earliest - now));
  }

  /**
   * Inside the tick's transaction: the secrets that sign a tenant's webhooks, newest first. Read with
   * one prepared select and decrypted once per ciphertext (a rotation stores a new one, so a cached
   * plaintext is never stale); a tenant without a secret yet gets one created, in a savepoint.
   */
  private secretsOf(tenantId: string, now: number): string[] | null {
    // One tenant's secret that no longer decrypts (ENCRYPTION_KEY replaced), or that cannot be
    // created, must not hold up the tick: the others' deliveries go on.
    const read = this.readSecrets(tenantId, now);
    if (read.ok) return read.value;
    this.deps.logger.error(
      { err: read.err, tenant: tenantId.slice(0, 12) },
      "signing secret unreadable: this tenant's webhooks wait",
    );
    return null;
  }

  /**
   * A read writes nothing, so only a creation needs a savepoint of its own (a savepoint per tenant
   * and tick was ~5 % of a delivery's CPU). An error that ended the transaction is thrown (`settled`).
   */
  private readSecrets(tenantId: string, now: number): Settled<string[]> {
    const read = settled(this.deps.db, () => {
      const stored = storedSigningSecrets(this.deps.db, tenantId);
      return stored ? this.decryptAll(stored, now) : null;
    });
    if (!read.ok) return read;
    if (read.value) return { ok: true, value: read.value };
    return inSavepoint(this.deps.db, () => [
      signingSecrets(this.deps.db, this.deps.encryptionKey, tenantId, now).current,
    ]);
  }

  private decryptAll(stored: StoredSecrets, now: number): string[] {
    const current = this.decrypt(stored.current);
    const previousValid = stored.previous !== null && (stored.previousUntil ?? 0) > now;
    return previousValid && stored.previous ? [current, this.decrypt(stored.previous)] : [current];
  }

  private decrypt(blob: string): string {
    let plain = this.plaintexts.get(blob);
    if (plain === undefined) {
      plain = decryptSecret(this.deps.encryptionKey, blob);
      if (this.plaintexts.size > 10_000) this.plaintexts.clear();
      this.plaintexts.set(blob, plain);
    }
    return plain;
  }

  private dispatch(
    delivery: DueDelivery,
    leaseUntil: number,
    secrets: string[],
    now: number,
  ): void {
    const message = {
      url: delivery.callbackUrl,
      id: delivery.eventId,
      body: delivery.payload,
      secrets,
    };
    const attempt = this.deps.sender.send(message, now).then((result) => {
      this.deps.metrics.deliveryLatency.observe(result.durationMs / 1000);
      this.finished.push({ delivery, leaseUntil, attempt: result });
    });
    this.inFlightIds.set(delivery.id, leaseUntil);
    const tracked = attempt.finally(() => {
      this.inFlight.delete(tracked);
      this.inFlightIds.delete(delivery.id);
      this.loop.notify();
    });
    this.inFlight.add(tracked);
  }

  /** Records finished attempts and their deliveries' new state in one transaction. */
  private flush(): void {
    if (this.finished.length === 0) return;
    const batch = this.finished;
    const outcomes = transaction(this.deps.db, () => batch.map((f) => this.record(f)));
    this.finished = [];
    for (const outcome of outcomes) this.deps.metrics.deliveries.inc({ outcome });
  }

  private record({
    delivery,
    leaseUntil,
    attempt,
  }: Finished): "delivered" | "retry" | "failed" | "gone" | "stale" {
    const { statusCode } = attempt;
    this.deps.logger.debug(
      {
        deliveryId: delivery.id,
        watchId: delivery.watchId,
        statusCode,
        error: attempt.error,
        ms: attempt.durationMs,
      },
      "delivery attempt",
    );
    this.stmts.insertAttempt({
      deliveryId: delivery.id,
      at: attempt.at,
      durationMs: attempt.durationMs,
      statusCode,
      error: attempt.error,
      responseBody: attempt.responseBody,
    });
    const base = { id: delivery.id, leaseUntil, at: attempt.at, error: attempt.error, statusCode };
    if (statusCode !== null && statusCode >= 200 && statusCode < 300) {
      return this.stmts.finish({ ...base, status: "delivered", nextAttemptAt: attempt.at })
        ? "delivered"
        : this.stale(delivery);
    }
    if (statusCode === 410) {
      if (!this.stmts.finish({ ...base, status: "failed", nextAttemptAt: attempt.at }))
        return this.stale(delivery);
      endWatches(
        this.deps.db,
        [delivery.watchId],
        "failed",
        "CALLBACK_GONE",
        this.deps.clock.now(),
      );
      this.deps.logger.warn(
        { watchId: delivery.watchId },
        "callback answered 410 Gone: watch ended",
      );
      return "gone";
    }
    const delay = nextAttemptDelay(this.deps.options.schedule, delivery.attempts + 1, {
      retryAfterMs: attempt.retryAfterMs,
      random: this.random,
    });
    if (delay === null) {
      if (!this.stmts.finish({ ...base, status: "failed", nextAttemptAt: attempt.at }))
        return this.stale(delivery);
      this.deps.logger.warn(
        { deliveryId: delivery.id, watchId: delivery.watchId, error: attempt.error },
        "delivery failed for good after its last attempt",
      );
      return "failed";
    }
    if (!this.stmts.finish({ ...base, status: "pending", nextAttemptAt: attempt.at + delay }))
      return this.stale(delivery);
    return "retry";
  }

  /** The attempt stays in the log (the consumer may have seen it); the delivery's state is not ours. */
  private stale(delivery: DueDelivery): "stale" {
    this.deps.logger.warn(
      { deliveryId: delivery.id },
      "attempt finished after its lease was taken over: outcome not applied",
    );
    return "stale";
  }
}
