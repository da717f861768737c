import { z } from "zod";
import { parseEncryptionKey } from "./domain/crypto.js";
import { parseDurationList } from "./domain/durations.js";

/** The only reader of process.env. Every variable of SPEC §7, validated once, frozen. */

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(["true", "false", "1", "0", "yes", "no"]))
  .transform((v) => v === "true" || v === "1" || v === "yes");

const httpUrl = z
  .string()
  .trim()
  .pipe(z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }))
  .transform((v) => v.replace(/\/+$/, ""));

const schedule = z.string().transform((v, ctx) => {
  try {
    return parseDurationList(v);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

// The same strict reading the key file gets: a value accepted here must never fail at start-up later.
const encryptionKey = z
  .string()
  .trim()
  .refine(
    (v) => {
      try {
        parseEncryptionKey(v);
        return true;
      } catch {
        return false;
      }
    },
    { message: "must be 32 bytes, base64-encoded (openssl rand -base64 32)" },
  );

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const envSchema = z.object({
  PORT: int(0, 65535).default(8080),
  HOST: z.string().trim().min(1).default("0.0.0.0"),
  DATABASE_URL: z.string().trim().min(1).default("./data/taskhook.db"),
  UPSTREAM_BASE_URL: httpUrl.default("https://api.vibepeak.ai"),
  ENCRYPTION_KEY: encryptionKey.optional(),
  ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  POLL_INTERVAL_MIN_MS: int(1).default(5000),
  POLL_INTERVAL_MAX_MS: int(1).default(15000),
  UPSTREAM_RPS: int(1).default(50),
  UPSTREAM_RPS_PER_KEY: int(1).default(10),
  UPSTREAM_CONCURRENCY: int(1, 10_000).default(32),
  UPSTREAM_TIMEOUT_MS: int(1).default(10000),
  SCHEDULER_BATCH_SIZE: int(1, 100_000).default(200),
  WATCH_TTL_S: int(60, 604800).default(86400),
  MAX_ACTIVE_WATCHES_PER_KEY: int(1).default(10000),
  DELIVERY_TIMEOUT_MS: int(1).default(15000),
  DELIVERY_RETRY_SCHEDULE: schedule.default([
    0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 50_400_000, 72_000_000,
    86_400_000,
  ]),
  DELIVERY_CONCURRENCY: int(1, 10_000).default(64),
  ALLOW_PRIVATE_CALLBACKS: bool.default(false),
  REQUIRE_HTTPS_CALLBACKS: bool.default(false),
  RETENTION_DAYS: int(1).default(30),
  LOG_LEVEL: z.enum(LOG_LEVELS).default("info"),
  /** Not in SPEC §7: how long shutdown waits for in-flight work before it gives up. */
  SHUTDOWN_GRACE_MS: int(0).default(10_000),
});

export type Config = Readonly<z.output<typeof envSchema>>;

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    reason: string,
  ) {
    super(`invalid configuration: ${variable} ${reason}`);
  }
}

/**
 * Parses the environment. Empty strings count as unset, so `FOO=` in a compose file means "default".
 * Throws a ConfigError naming the first bad variable; `main.ts` prints its one line and exits 1.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const parsed = envSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue?.path[0] ?? "environment");
    throw new ConfigError(variable, issue?.message ?? "is invalid");
  }
  const config = parsed.data;
  if (config.POLL_INTERVAL_MAX_MS < config.POLL_INTERVAL_MIN_MS) {
    throw new ConfigError("POLL_INTERVAL_MAX_MS", "must not be below POLL_INTERVAL_MIN_MS");
  }
  return Object.freeze(config);
}

/** Warnings worth one log line at start-up (the values are accepted). */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (config.POLL_INTERVAL_MIN_MS < 5000) {
    warnings.push(
      `POLL_INTERVAL_MIN_MS=${config.POLL_INTERVAL_MIN_MS} is below the upstream's 5 s guidance: use it for tests and demos only`,
    );
  }
  if (config.ALLOW_PRIVATE_CALLBACKS) {
    warnings.push(
      "ALLOW_PRIVATE_CALLBACKS=true: callbacks to private and loopback addresses are allowed",
    );
  }
  return warnings;
}
