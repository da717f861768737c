import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { type BetterSQLite3Database, drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import * as schema from "./schema.js";

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

/** The committed drizzle-kit migrations, found from this file in src/ and in dist/ alike. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../migrations", import.meta.url));

export interface OpenDatabaseOptions {
  /**
   * How long a statement waits for another process's lock before SQLITE_BUSY. better-sqlite3 waits
   * synchronously, blocking the event loop, so this stays short: the API answers 503 and the loops
   * retry on their next tick instead.
   */
  busyTimeoutMs?: number;
}

/**
 * Opens (creating its folder) and migrates the database. WAL lets readers in other processes go on
 * while this one writes; the busy timeout absorbs short locks taken by another process.
 */
export function openDatabase(path: string, options: OpenDatabaseOptions = {}): Db {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path);
  sqlite.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 200}`);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = NORMAL");
  // 16 MB of page cache (the default is 2 MB): the hot rows of ~100k watches stay in memory.
  sqlite.pragma("cache_size = -16000");
  // Savepoints (group commit runs each registration in one) journal the pages they touch; in a temp
  // file by default, which doubled the cost of a registration's statements. In memory instead.
  sqlite.pragma("temp_store = MEMORY");
  sqlite.pragma("foreign_keys = ON");
  const db = drizzle(sqlite, { schema });
  migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
  return db;
}

/** Runs `fn` in one synchronous IMMEDIATE transaction (takes the write lock up front, no upgrade deadlock). */
export function transaction<T>(db: Db, fn: () => T): T {
  return db.$client.transaction(fn).immediate();
}

export type Settled<T> = { ok: true; value: T } | { ok: false; err: unknown };

/**
 * Inside a transaction: runs `fn` in a savepoint of its own. If it throws, its writes are rolled back
 * alone and the error is returned, so the caller's transaction goes on. Some errors (SQLITE_FULL,
 * IOERR) make SQLite roll back the whole transaction instead; those are thrown, for anything run
 * after them would run, and commit, outside it.
 */
export function inSavepoint<T>(db: Db, fn: () => T): Settled<T> {
  return settled(db, () => transaction(db, fn));
}

/**
 * Inside a transaction: runs `fn` (which writes nothing, or runs its writes in a savepoint) and
 * returns its error instead of throwing it, unless the error ended the transaction (see inSavepoint).
 */
export function settled<T>(db: Db, fn: () => T): Settled<T> {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (!db.$client.inTransaction) throw err;
    return { ok: false, err };
  }
}

/**
 * Statements prepared once per database, on first use: hot paths skip drizzle's query building
 * (several times the cost of running a prepared statement).
 */
export function preparedOnce<T>(prepare: (db: Db) => T): (db: Db) => T {
  const cache = new WeakMap<Db, T>();
  return (db) => {
    let statements = cache.get(db);
    if (statements === undefined) {
      statements = prepare(db);
      cache.set(db, statements);
    }
    return statements;
  };
}
