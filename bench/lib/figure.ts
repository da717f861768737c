import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** One row of bench/results.json: a figure, its baseline measured in the same run, and its target. */
export interface FigureRow {
  name: string;
  value: number | null;
  baseline: number | null;
  ratio: number | null;
  target: string;
  pass: boolean;
  /** Units, spread over repetitions, and whatever explains the figure. */
  detail?: Record<string, unknown>;
}

export interface BenchOptions {
  /** Repetitions of each measured pair (baseline, subject). */
  reps: number;
  /** Shorter runs (a smoke test of the harness, not figures to quote). */
  quick: boolean;
}

export function benchOptions(): BenchOptions {
  const quick = process.env.BENCH_QUICK === "1";
  const reps = Number(process.env.BENCH_REPS ?? (quick ? 2 : 5));
  return { reps: Number.isInteger(reps) && reps > 0 ? reps : 5, quick };
}

export const RESULT_PREFIX = "BENCH_RESULT ";

/**
 * Each figure runs in its own process (`node --import tsx bench/<figure>.ts`): a fresh heap and JIT per
 * figure, a crash that loses one figure only, and a figure that can be profiled alone with --cpu-prof.
 * The rows go to stdout as one prefixed JSON line for bench/run.ts.
 */
export function figureMain(
  moduleUrl: string,
  run: (opts: BenchOptions) => Promise<FigureRow[]>,
): void {
  const entry = process.argv[1];
  if (entry === undefined) return;
  if (realpathSync(entry) !== realpathSync(fileURLToPath(moduleUrl))) return;
  run(benchOptions()).then(
    (rows) => {
      process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(rows)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}

export function log(message: string): void {
  process.stderr.write(`  ${message}\n`);
}
