import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ConfigError, configWarnings, loadConfig } from "../src/config.js";

const KEY32 = Buffer.alloc(32, 1).toString("base64");

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`no ConfigError for ${JSON.stringify(env)}`);
}

describe("loadConfig defaults", () => {
  it("match SPEC §7 exactly", () => {
    expect(loadConfig({})).toEqual({
      PORT: 8080,
      HOST: "0.0.0.0",
      DATABASE_URL: "./data/taskhook.db",
      UPSTREAM_BASE_URL: "https://api.vibepeak.ai",
      POLL_INTERVAL_MIN_MS: 5000,
      POLL_INTERVAL_MAX_MS: 15000,
      UPSTREAM_RPS: 50,
      UPSTREAM_RPS_PER_KEY: 10,
      UPSTREAM_CONCURRENCY: 32,
      UPSTREAM_TIMEOUT_MS: 10000,
      SCHEDULER_BATCH_SIZE: 200,
      WATCH_TTL_S: 86400,
      MAX_ACTIVE_WATCHES_PER_KEY: 10000,
      DELIVERY_TIMEOUT_MS: 15000,
      // 0s,5s,5m,30m,2h,5h,10h,14h,20h,24h
      DELIVERY_RETRY_SCHEDULE: [
        0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 50_400_000, 72_000_000,
        86_400_000,
      ],
      DELIVERY_CONCURRENCY: 64,
      ALLOW_PRIVATE_CALLBACKS: false,
      REQUIRE_HTTPS_CALLBACKS: false,
      RETENTION_DAYS: 30,
      LOG_LEVEL: "info",
      SHUTDOWN_GRACE_MS: 10_000,
    });
  });

  it("leave ENCRYPTION_KEY and ADMIN_TOKEN unset", () => {
    const config = loadConfig({});
    expect(config.ENCRYPTION_KEY).toBeUndefined();
    expect(config.ADMIN_TOKEN).toBeUndefined();
  });

  it("treat an empty string as unset, ignore unknown variables, and freeze the result", () => {
    const config = loadConfig({ PORT: "", ADMIN_TOKEN: "", SOMETHING_ELSE: "x" });
    expect(config.PORT).toBe(8080);
    expect(config.ADMIN_TOKEN).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("the default schedule is about three days in total", () => {
    const total = loadConfig({}).DELIVERY_RETRY_SCHEDULE.reduce((a, b) => a + b, 0);
    expect(total / 86_400_000).toBeCloseTo(3.1, 1);
  });
});

describe("loadConfig reads every variable", () => {
  it("parses numbers, URLs, keys and levels", () => {
    const config = loadConfig({
      PORT: "3000",
      HOST: "127.0.0.1",
      DATABASE_URL: ":memory:",
      UPSTREAM_BASE_URL: "http://127.0.0.1:9999/",
      ENCRYPTION_KEY: ` ${KEY32} `,
      ADMIN_TOKEN: "a-long-enough-admin-token",
      POLL_INTERVAL_MIN_MS: "100",
      POLL_INTERVAL_MAX_MS: "100",
      UPSTREAM_RPS: "5",
      UPSTREAM_RPS_PER_KEY: "2",
      UPSTREAM_CONCURRENCY: "4",
      UPSTREAM_TIMEOUT_MS: "250",
      SCHEDULER_BATCH_SIZE: "10",
      WATCH_TTL_S: "60",
      MAX_ACTIVE_WATCHES_PER_KEY: "2",
      DELIVERY_TIMEOUT_MS: "500",
      DELIVERY_RETRY_SCHEDULE: "0ms, 250ms,1s",
      DELIVERY_CONCURRENCY: "3",
      ALLOW_PRIVATE_CALLBACKS: "true",
      REQUIRE_HTTPS_CALLBACKS: "true",
      RETENTION_DAYS: "7",
      LOG_LEVEL: "debug",
      SHUTDOWN_GRACE_MS: "2000",
    });
    expect(config).toEqual({
      PORT: 3000,
      HOST: "127.0.0.1",
      DATABASE_URL: ":memory:",
      UPSTREAM_BASE_URL: "http://127.0.0.1:9999",
      ENCRYPTION_KEY: KEY32,
      ADMIN_TOKEN: "a-long-enough-admin-token",
      POLL_INTERVAL_MIN_MS: 100,
      POLL_INTERVAL_MAX_MS: 100,
      UPSTREAM_RPS: 5,
      UPSTREAM_RPS_PER_KEY: 2,
      UPSTREAM_CONCURRENCY: 4,
      UPSTREAM_TIMEOUT_MS: 250,
      SCHEDULER_BATCH_SIZE: 10,
      WATCH_TTL_S: 60,
      MAX_ACTIVE_WATCHES_PER_KEY: 2,
      DELIVERY_TIMEOUT_MS: 500,
      DELIVERY_RETRY_SCHEDULE: [0, 250, 1000],
      DELIVERY_CONCURRENCY: 3,
      ALLOW_PRIVATE_CALLBACKS: true,
      REQUIRE_HTTPS_CALLBACKS: true,
      RETENTION_DAYS: 7,
      LOG_LEVEL: "debug",
      SHUTDOWN_GRACE_MS: 2000,
    });
  });

  it.each<[string, boolean]>([
    ["true", true],
    ["TRUE", true],
    [" True ", true],
    ["1", true],
    ["yes", true],
    ["false", false],
    ["FALSE", false],
    ["0", false],
    ["no", false],
  ])("reads the boolean %j as %s", (value, expected) => {
    const config = loadConfig({ ALLOW_PRIVATE_CALLBACKS: value, REQUIRE_HTTPS_CALLBACKS: value });
    expect(config.ALLOW_PRIVATE_CALLBACKS).toBe(expected);
    expect(config.REQUIRE_HTTPS_CALLBACKS).toBe(expected);
  });

  it.each<[string, number[]]>([
    ["0s", [0]],
    ["1ms,2s,3m,4h", [1, 2_000, 180_000, 14_400_000]],
    [" 5s , 5m ", [5_000, 300_000]],
    ["0s,5s,5m,30m,2h,5h,10h,14h,20h,24h", loadConfig({}).DELIVERY_RETRY_SCHEDULE],
  ])("parses the schedule %j", (value, expected) => {
    expect(loadConfig({ DELIVERY_RETRY_SCHEDULE: value }).DELIVERY_RETRY_SCHEDULE).toEqual(
      expected,
    );
  });

  it("accepts a poll floor below 5 s with a warning", () => {
    const config = loadConfig({ POLL_INTERVAL_MIN_MS: "100", POLL_INTERVAL_MAX_MS: "200" });
    expect(configWarnings(config)).toEqual([expect.stringContaining("POLL_INTERVAL_MIN_MS=100")]);
    expect(configWarnings(loadConfig({}))).toEqual([]);
  });
});

describe("a bad value throws a ConfigError naming its variable", () => {
  it.each<[string, string]>([
    ["PORT", "abc"],
    ["PORT", "-1"],
    ["PORT", "65536"],
    ["PORT", "80.5"],
    ["HOST", "   "],
    ["UPSTREAM_BASE_URL", "not a url"],
    ["UPSTREAM_BASE_URL", "ftp://api.vibepeak.ai"],
    ["ENCRYPTION_KEY", "short"],
    ["ENCRYPTION_KEY", Buffer.alloc(16, 1).toString("base64")],
    ["ENCRYPTION_KEY", Buffer.alloc(33, 1).toString("base64")],
    ["ENCRYPTION_KEY", `${KEY32.slice(0, -2)}B=`],
    ["ENCRYPTION_KEY", Buffer.alloc(32, 1).toString("base64url").replace(/A/g, "-")],
    ["ENCRYPTION_KEY", `${KEY32}!!`],
    ["ADMIN_TOKEN", "too-short"],
    ["POLL_INTERVAL_MIN_MS", "0"],
    ["POLL_INTERVAL_MIN_MS", "5s"],
    ["POLL_INTERVAL_MAX_MS", "ten"],
    ["POLL_INTERVAL_MAX_MS", "4999"],
    ["UPSTREAM_RPS", "0"],
    ["UPSTREAM_RPS", "1e3"],
    ["UPSTREAM_RPS_PER_KEY", "0"],
    ["UPSTREAM_CONCURRENCY", "0"],
    ["UPSTREAM_CONCURRENCY", "100000"],
    ["UPSTREAM_TIMEOUT_MS", "-5"],
    ["SCHEDULER_BATCH_SIZE", "0"],
    ["WATCH_TTL_S", "59"],
    ["WATCH_TTL_S", "604801"],
    ["MAX_ACTIVE_WATCHES_PER_KEY", "0"],
    ["MAX_ACTIVE_WATCHES_PER_KEY", "lots"],
    ["DELIVERY_TIMEOUT_MS", "0"],
    ["DELIVERY_RETRY_SCHEDULE", "5"],
    ["DELIVERY_RETRY_SCHEDULE", "5s,,5m"],
    ["DELIVERY_RETRY_SCHEDULE", "1.5s"],
    ["DELIVERY_RETRY_SCHEDULE", "5d"],
    ["DELIVERY_RETRY_SCHEDULE", " , "],
    ["DELIVERY_CONCURRENCY", "0"],
    ["ALLOW_PRIVATE_CALLBACKS", "maybe"],
    ["ALLOW_PRIVATE_CALLBACKS", "on"],
    ["REQUIRE_HTTPS_CALLBACKS", "2"],
    ["RETENTION_DAYS", "0"],
    ["LOG_LEVEL", "verbose"],
    ["SHUTDOWN_GRACE_MS", "10s"],
  ])("%s=%j", (variable, value) => {
    const err = configError({ [variable]: value });
    expect(err.variable).toBe(variable);
    expect(err.message).toMatch(new RegExp(`^invalid configuration: ${variable} \\S`));
    expect(err.message).not.toContain("\n");
  });

  it("does not echo the bad value of a secret", () => {
    const token = "short-secret";
    expect(configError({ ADMIN_TOKEN: token }).message).not.toContain(token);
    const key = `${KEY32.slice(0, 20)}zz`;
    expect(configError({ ENCRYPTION_KEY: key }).message).not.toContain(key);
  });

  it("names the first bad variable when several are bad", () => {
    expect(configError({ PORT: "x", LOG_LEVEL: "loud" }).variable).toBe("PORT");
  });
});

describe("start-up with a bad value", () => {
  const root = fileURLToPath(new URL("..", import.meta.url));

  it("exits 1 with exactly one stderr line naming the variable", async () => {
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((resolve) => {
      execFile(
        process.execPath,
        ["--import", "tsx", "src/main.ts"],
        {
          cwd: root,
          timeout: 30_000,
          env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PORT: "abc" },
        },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    const lines = stderr.split("\n").filter((l) => l !== "");
    expect(lines).toEqual(["taskhook: invalid configuration: PORT must be a whole number"]);
  });
});
