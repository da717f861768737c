import type { Clock } from "../clock.js";
import type { Config } from "../config.js";
import { type Db, transaction } from "../db/client.js";
import { acquireLease, leaseHolder, releaseLease, takeOverDeadLease } from "../db/leases.js";
import { type DueTarget, pollStatements, updateTarget } from "../db/polls.js";
import { recountAllActiveWatches, tenantApiKey } from "../db/tenants.js";
import { backoffDelay } from "../domain/backoff.js";
import type { Logger } from "../log.js";
import { gatherWait, Loop } from "../loop.js";
import type { Metrics } from "../metrics.js";
import { ArrivalBudget } from "./arrival-budget.js";
import { RecentCounter } from "./recent.js";
import {
  BACKOFF_CAP_MS,
  expireWatches,
  type PollOutcome,
  type RecordContext,
  type RecordSummary,
  recordOutcomes,
} from "./record.js";
import { outcomeOf, type UpstreamClient } from "./upstream.js";

export interface SchedulerOptions {
  minIntervalMs: number;
  maxIntervalMs: number;
  rps: number;
  rpsPerKey: number;
  concurrency: number;
  timeoutMs: number;
  batchSize: number;
}

/** The scheduler's settings from the configuration (SPEC §7). */
export function schedulerOptions(config: Config): SchedulerOptions {
  return {
    minIntervalMs: config.POLL_INTERVAL_MIN_MS,
    maxIntervalMs: config.POLL_INTERVAL_MAX_MS,
    rps: config.UPSTREAM_RPS,
    rpsPerKey: config.UPSTREAM_RPS_PER_KEY,
    concurrency: config.UPSTREAM_CONCURRENCY,
    timeoutMs: config.UPSTREAM_TIMEOUT_MS,
    batchSize: config.SCHEDULER_BATCH_SIZE,
  };
}

export interface SchedulerDeps {
  db: Db;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  upstream: UpstreamClient;
  encryptionKey: Buffer;
  options: SchedulerOptions;
  random?: () => number;
  /** Called after events were written to the outbox: wakes the deliverer. */
  onEvents?: () => void;
}

/**
 * The budgets' window. ArrivalBudget holds a request's slot until a window after it ends, so the
 * upstream never sees more than the budget in any second however late a request arrives; the 2 ms
 * only absorb the clocks' rounding.
 */
export const RATE_WINDOW_MS = 1002;
export const LEASE_NAME = "scheduler";
export const LEASE_TTL_MS = 15_000;
/** Longest sleep between ticks: expiry and the leader lease are checked at least this often. */
const MAX_IDLE_MS = 1000;
/** A decrypted API key is read again after this long (it may have been forgotten meanwhile). */
const KEY_CACHE_MS = 60_000;
/**
 * How often the per-key state of keys no longer polled is dropped: their budgets, booked slots,
 * silences and decrypted API keys. Else every key ever polled would stay in memory for the life of
 * the process, its plaintext API key with it.
 */
const FORGET_EVERY_MS = 60_000;

/**
 * The one central poller. Each tick: record finished polls, expire watches, claim due targets in
 * one indexed query (at most `batchSize`), send as many as the budgets allow (oldest due first) and
 * push the rest of a busy key to the times its budget frees. Only the holder of the database's
 * scheduler lease polls; a second process stands by and takes over when the lease expires.
 */
export class Scheduler {
  readonly recent = new RecentCounter();
  private readonly stmts;
  private readonly global: ArrivalBudget;
  private readonly perKey = new Map<string, ArrivalBudget>();
  /** Per key: the next free slot handed to a deferred target, so deferred targets keep their order. */
  private readonly keySlot = new Map<string, number>();
  /** Per key after a 429: silent until, and how many 429s in a row (backoff without Retry-After). */
  private readonly silence = new Map<string, { until: number; strikes: number; since: number }>();
  private readonly keys = new Map<string, { apiKey: string; at: number }>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly inFlightTargets = new Set<number>();
  private finished: PollOutcome[] = [];
  private readonly holder = leaseHolder();
  private leader = false;
  private leaseCheckedAt = -Infinity;
  private expiredAt = -Infinity;
  private forgotAt = -Infinity;
  /** When the last tick recorded and claimed (see `gatherWait`). */
  private claimedAt = -Infinity;
  private readonly random: () => number;
  private readonly loop: Loop;

  constructor(private readonly deps: SchedulerDeps) {
    this.stmts = pollStatements(deps.db);
    this.global = new ArrivalBudget(deps.options.rps, RATE_WINDOW_MS);
    this.random = deps.random ?? Math.random;
    this.loop = new Loop({
      name: "scheduler",
      logger: deps.logger,
      tick: () => this.tick(),
      onError: () => deps.metrics.loopErrors.inc({ loop: "scheduler" }),
      maxIdleMs: MAX_IDLE_MS,
    });
  }

  start(): void {
    this.loop.start();
  }

  /** Stops claiming, lets in-flight polls finish (bounded by the upstream time-out), records them. */
  async stop(): Promise<void> {
    await this.loop.stop();
    await this.idle();
    if (this.leader) releaseLease(this.deps.db, LEASE_NAME, this.holder);
    this.leader = false;
  }

  /** Wake the loop now (a new registration is due at once). */
  notify(): void {
    this.loop.notify();
  }

  get running(): boolean {
    return this.loop.running;
  }

  get isLeader(): boolean {
    return this.leader;
  }

  /**
   * Shutdown past its grace period: the polls still in flight are handed back (due again at once,
   * for this process after a restart or for the next lease holder) instead of waiting out their lease.
   */
  release(): void {
    this.flush();
    const ids = [...this.inFlightTargets];
    transaction(this.deps.db, () => {
      for (const id of ids) this.stmts.release(id);
    });
    this.inFlightTargets.clear();
    this.finished = [];
    if (this.leader) releaseLease(this.deps.db, LEASE_NAME, this.holder);
  }

  /** Waits for every poll in flight and records them (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    this.flush();
  }

  /** One iteration; returns how long the loop may sleep before the next. */
  async tick(): Promise<number> {
    const now = this.deps.clock.now();
    if (!this.holdsLease(now)) return LEASE_TTL_MS / 3;
    if (now - this.expiredAt >= MAX_IDLE_MS) {
      this.expire();
      this.expiredAt = now;
    }
    if (now - this.forgotAt >= FORGET_EVERY_MS) {
      this.forgetIdleKeys(now);
      this.forgotAt = now;
    }

    const { concurrency, batchSize } = this.deps.options;
    // Under load, more polls finish within a short wait: one commit records and claims them all.
    const wait = gatherWait(concurrency - this.inFlight.size, concurrency, now - this.claimedAt);
    if (wait !== null) return wait;
    if (this.inFlight.size >= concurrency || this.global.nextFreeAt(now) > now) {
      this.flush();
      // A completion wakes us; else the budget's next free slot.
      return this.inFlight.size >= concurrency ? MAX_IDLE_MS : this.global.nextFreeAt(now) - now;
    }

    // Claim no more than can be sent: under load a tick runs per finished poll, for one or two slots.
    const limit = Math.min(batchSize, concurrency - this.inFlight.size);
    const leaseUntil = now + this.deps.options.timeoutMs + 5000;
    this.claimedAt = now;
    const batch = this.finished;
    this.finished = [];
    const ctx = this.recordContext();
    let claim: ReturnType<typeof this.claim> & {
      recorded: RecordSummary | null;
      earliest: number | null;
    };
    try {
      // One commit per tick: the polls that finished and the ones that start (and, when fewer were
      // due than could be sent, the next due time: a read on its own opens a read transaction).
      claim = transaction(this.deps.db, () => {
        const recorded = batch.length > 0 ? recordOutcomes(ctx, batch) : null;
        const claimed = this.claim(now, limit, leaseUntil);
        const earliest = claimed.claimed < limit ? this.stmts.earliestDue() : null;
        return { ...claimed, recorded, earliest };
      });
    } catch (err) {
      this.finished = batch.concat(this.finished);
      throw err;
    }
    if (claim.recorded) this.count(claim.recorded.events, claim.recorded.backwards);
    for (const row of claim.send) {
      this.deps.metrics.pollLateness.observe(Math.max(0, now - row.dueAt) / 1000);
      this.dispatch(row, now);
    }

    if (claim.blocked) return Math.max(1, this.global.nextFreeAt(now) - now);
    if (claim.claimed === limit) return 0;
    const { earliest } = claim;
    return earliest === null ? MAX_IDLE_MS : Math.min(MAX_IDLE_MS, Math.max(0, earliest - now));
  }

  /**
   * Inside the tick's transaction: the due targets, oldest first, sent while the budgets allow
   * (leased) or, for a busy or silenced key, pushed to that key's next free slot.
   */
  private claim(now: number, limit: number, leaseUntil: number) {
    const rows = this.stmts.due(now, limit);
    const send: DueTarget[] = [];
    let blocked = false;
    for (const row of rows) {
      if (
        this.inFlight.size + send.length >= this.deps.options.concurrency ||
        this.global.nextFreeAt(now) > now
      ) {
        blocked = true;
        break;
      }
      const wait = this.keyWait(row.tenantId, now);
      if (wait !== null) {
        this.stmts.defer(row.id, wait);
        continue;
      }
      this.global.tryAcquire(now);
      this.stmts.lease(row.id, now, leaseUntil);
      send.push(row);
    }
    return { send, blocked, claimed: rows.length };
  }

  /** null when the key may send now (and takes its token); else when its target should be retried. */
  private keyWait(tenantId: string, now: number): number | null {
    const silent = this.silence.get(tenantId);
    if (silent && silent.until > now) return this.nextSlot(tenantId, silent.until);
    let window = this.perKey.get(tenantId);
    if (!window) {
      window = new ArrivalBudget(this.deps.options.rpsPerKey, RATE_WINDOW_MS);
      this.perKey.set(tenantId, window);
    }
    if (window.tryAcquire(now)) return null;
    return this.nextSlot(tenantId, window.nextFreeAt(now));
  }

  private nextSlot(tenantId: string, earliest: number): number {
    const slot = Math.max(earliest, this.keySlot.get(tenantId) ?? 0);
    this.keySlot.set(tenantId, slot + Math.ceil(RATE_WINDOW_MS / this.deps.options.rpsPerKey));
    return slot;
  }

  /**
   * A polled target of a key whose budget is booked ahead goes to the back of that key's line, so
   * that under overload every target of the key is polled in turn (round robin), none twice while
   * another waits.
   */
  private queueBehind(tenantId: string, at: number): number {
    const booked = this.keySlot.get(tenantId);
    if (booked === undefined || booked <= at) return at;
    return this.nextSlot(tenantId, at);
  }

  private dispatch(row: DueTarget, sentAt: number): void {
    // The budgets' slots are held until the request ends: it may arrive upstream any time before.
    const release = () => {
      const end = this.deps.clock.now();
      this.global.release(end);
      this.perKey.get(row.tenantId)?.release(end);
    };
    const apiKey = this.apiKey(row.tenantId, sentAt);
    if (apiKey === null) {
      release();
      // No key means no active watch needs this target any more: stop polling it.
      updateTarget(this.deps.db, row.id, { active: false, leaseUntil: null });
      return;
    }
    const started = performance.now();
    const poll = this.deps.upstream.getTask(row.taskId, apiKey, sentAt).then((result) => {
      const outcome = outcomeOf(result);
      this.deps.metrics.upstreamRequests.inc({ outcome });
      this.deps.metrics.upstreamLatency.observe((performance.now() - started) / 1000);
      this.recent.add(this.deps.clock.now(), outcome !== "2xx");
      const done: PollOutcome = { targetId: row.id, sentAt, result };
      if (result.kind === "rate_limited")
        done.silencedUntil = this.silenceKey(row.tenantId, result.retryAfterMs, sentAt);
      else if (result.kind === "ok") this.endSilence(row.tenantId, sentAt);
      if (result.kind === "fault") {
        this.deps.logger.warn(
          { taskId: row.taskId, outcome, error: result.message },
          "upstream fault",
        );
      } else {
        this.deps.logger.debug({ taskId: row.taskId, outcome }, "polled");
      }
      this.finished.push(done);
    });
    this.inFlightTargets.add(row.id);
    const tracked = poll.finally(() => {
      release();
      this.inFlight.delete(tracked);
      this.inFlightTargets.delete(row.id);
      this.loop.notify();
    });
    this.inFlight.add(tracked);
  }

  /**
   * A success ends the run of 429s — unless the request was sent before the key fell silent: then it
   * says nothing of the Retry-After still running.
   */
  private endSilence(tenantId: string, sentAt: number): void {
    const silent = this.silence.get(tenantId);
    if (silent && sentAt > silent.since) this.silence.delete(tenantId);
  }

  /**
   * A 429 silences the key until Retry-After, or an exponential backoff when it gives none. The
   * backoff grows with each 429 in a row; the 429s of requests already sent when the key fell silent
   * answer for the same moment and count once, else one burst would silence a key for minutes.
   */
  private silenceKey(tenantId: string, retryAfterMs: number | null, sentAt: number): number {
    const now = this.deps.clock.now();
    const previous = this.silence.get(tenantId);
    const sameBurst = previous !== undefined && sentAt <= previous.since;
    const strikes = (previous?.strikes ?? 0) + (sameBurst ? 0 : 1);
    const wait =
      retryAfterMs ??
      (sameBurst
        ? 0
        : backoffDelay(
            strikes,
            { baseMs: 1000, capMs: BACKOFF_CAP_MS, floorMs: 1000 },
            this.random,
          ));
    const until = Math.max(previous?.until ?? 0, now + wait);
    this.silence.set(tenantId, { until, strikes, since: sameBurst ? previous.since : now });
    this.deps.logger.warn(
      { tenant: tenantId.slice(0, 12), waitMs: until - now },
      "upstream 429: key silenced",
    );
    return until;
  }

  private apiKey(tenantId: string, now: number): string | null {
    const cached = this.keys.get(tenantId);
    if (cached && now - cached.at < KEY_CACHE_MS) return cached.apiKey;
    const apiKey = tenantApiKey(this.deps.db, this.deps.encryptionKey, tenantId);
    if (apiKey === null) this.keys.delete(tenantId);
    else this.keys.set(tenantId, { apiKey, at: now });
    return apiKey;
  }

  /**
   * Drops what is kept per key for keys not polled lately, where dropping changes nothing: a budget
   * with nothing in flight or within its window, a booked slot already past, a silence that ended
   * longer ago than the longest backoff (a 429 after that starts a new run), a decrypted key past its
   * cache time. O(keys), once a minute.
   */
  private forgetIdleKeys(now: number): void {
    for (const [tenantId, cached] of this.keys) {
      if (now - cached.at >= KEY_CACHE_MS) this.keys.delete(tenantId);
    }
    for (const [tenantId, budget] of this.perKey) {
      if (budget.isIdle(now)) this.perKey.delete(tenantId);
    }
    for (const [tenantId, slot] of this.keySlot) {
      if (slot <= now) this.keySlot.delete(tenantId);
    }
    for (const [tenantId, silent] of this.silence) {
      if (silent.until + BACKOFF_CAP_MS <= now) this.silence.delete(tenantId);
    }
  }

  /** What is kept in memory for a key (tests and diagnostics). */
  keyState(tenantId: string): {
    apiKey: boolean;
    budget: boolean;
    slot: boolean;
    silence: boolean;
  } {
    return {
      apiKey: this.keys.has(tenantId),
      budget: this.perKey.has(tenantId),
      slot: this.keySlot.has(tenantId),
      silence: this.silence.has(tenantId),
    };
  }

  /** Records every finished poll in one transaction; on a database error they wait for the next tick. */
  private flush(): void {
    if (this.finished.length === 0) return;
    const batch = this.finished;
    const ctx = this.recordContext();
    const summary = transaction(this.deps.db, () => recordOutcomes(ctx, batch));
    this.finished = [];
    this.count(summary.events, summary.backwards);
  }

  private expire(): void {
    const ctx = this.recordContext();
    const summary = transaction(this.deps.db, () =>
      expireWatches(ctx, this.deps.options.batchSize),
    );
    this.count(summary.events, 0);
  }

  private recordContext(): RecordContext {
    const { minIntervalMs, maxIntervalMs } = this.deps.options;
    return {
      db: this.deps.db,
      stmts: this.stmts,
      now: this.deps.clock.now(),
      bounds: { minMs: minIntervalMs, maxMs: maxIntervalMs },
      random: this.random,
      queueBehind: (tenantId, at) => this.queueBehind(tenantId, at),
    };
  }

  private count(events: readonly string[], backwards: number): void {
    for (const type of events) this.deps.metrics.eventsCreated.inc({ type });
    if (events.length > 0) this.deps.onEvents?.();
    if (backwards > 0) {
      this.deps.metrics.backwardsAnswers.inc(backwards);
      this.deps.logger.warn(
        { count: backwards },
        "upstream answered a status behind the one recorded: ignored",
      );
    }
  }

  /**
   * A process of this host that died holding the lease (SIGKILL, OOM) would otherwise stop all
   * polling until its lease ran out; its polls in flight died with it, so their targets are due again.
   */
  private takeOverFromDead(now: number): boolean {
    return transaction(this.deps.db, () => {
      const dead = takeOverDeadLease(this.deps.db, LEASE_NAME, this.holder, now, LEASE_TTL_MS);
      if (dead === null) return false;
      const released = this.stmts.releaseAll(this.deps.options.minIntervalMs);
      this.deps.logger.warn(
        { previous: dead, released },
        "scheduler lease held by a process that died: taken over",
      );
      return true;
    });
  }

  private holdsLease(now: number): boolean {
    if (now - this.leaseCheckedAt < LEASE_TTL_MS / 3) return this.leader;
    const was = this.leader;
    this.leader =
      acquireLease(this.deps.db, LEASE_NAME, this.holder, now, LEASE_TTL_MS) ||
      this.takeOverFromDead(now);
    this.leaseCheckedAt = now;
    if (this.leader && !was) {
      // Counts of active watches left wrong by an older release that held the scheduler before.
      transaction(this.deps.db, () => recountAllActiveWatches(this.deps.db));
    }
    if (this.leader !== was) {
      this.deps.logger.info(
        { leader: this.leader },
        this.leader ? "scheduler lease taken: polling" : "scheduler lease lost: standing by",
      );
    }
    return this.leader;
  }
}
