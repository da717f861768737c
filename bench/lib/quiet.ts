import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { createLogger, type Logger } from "../../src/log.js";

/**
 * The service's own logger at `info`, writing to /dev/null: every line is still built and
 * serialized (a real cost of the request path), none is kept.
 */
export function devNullLogger(level = "info"): Logger {
  return createLogger({ level, destination: pino.destination({ dest: "/dev/null", sync: true }) });
}

/** A scratch folder for one figure's database files, removed by `cleanup`. */
export function scratchDir(name: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `taskhook-bench-${name}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
