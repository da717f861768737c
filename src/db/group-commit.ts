import { type Db, inSavepoint, type Settled, transaction } from "./client.js";

interface Job {
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** The most writes one commit carries: a burst is split, so the first answers do not wait for all. */
export const MAX_GROUP = 200;

/**
 * Group commit: writes asked for in the same turn of the event loop share one transaction, so one
 * WAL commit (most of a registration's cost when each had its own) serves them all. Each write runs
 * in its own savepoint: one that throws is rolled back alone and the others commit. Every promise
 * settles only after the commit, so nothing is acknowledged before it is durable; if the transaction
 * fails as a whole (another process holds the lock, the disk is full), every write of the group
 * fails with its error and none of them is stored.
 */
class GroupCommit {
  private queue: Job[] = [];

  constructor(private readonly db: Db) {}

  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.queue.length === 0) setImmediate(() => this.flush());
      this.queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
    });
  }

  private flush(): void {
    const jobs = this.queue.slice(0, MAX_GROUP);
    this.queue = this.queue.slice(MAX_GROUP);
    if (this.queue.length > 0) setImmediate(() => this.flush());
    let settled: Settled<unknown>[];
    try {
      settled = transaction(this.db, () => jobs.map((job) => inSavepoint(this.db, job.fn)));
    } catch (err) {
      for (const job of jobs) job.reject(err);
      return;
    }
    jobs.forEach((job, i) => {
      const result = settled[i];
      if (result?.ok) job.resolve(result.value);
      else job.reject(result?.err);
    });
  }
}

const groups = new WeakMap<Db, GroupCommit>();

/**
 * Runs `fn` (synchronous, database work only) in the next group commit of `db`; resolves with its
 * result once committed. Use it on request paths where many small writes arrive at once.
 */
export function inGroupCommit<T>(db: Db, fn: () => T): Promise<T> {
  let group = groups.get(db);
  if (group === undefined) {
    group = new GroupCommit(db);
    groups.set(db, group);
  }
  return group.run(fn);
}
