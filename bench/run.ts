/**
 * `npm run bench [-- figure ...]`: runs every figure (or the named ones) one after the other, each
 * in its own process, prints the table and writes bench/results.json and bench/RESULTS.md.
 *
 *   BENCH_REPS=n   pairs per figure (default 5)      BENCH_QUICK=1   short runs, to try the harness
 *
 * Not part of CI. Loopback only; every process a figure starts is stopped by that figure, and
 * every figure process by this one (also on Ctrl-C).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { ROOT, runTs } from "./lib/child.js";
import { benchOptions, type FigureRow, RESULT_PREFIX } from "./lib/figure.js";
import { round } from "./lib/stats.js";

const FIGURES = [
  "polls",
  "webhooks",
  "registrations",
  "policy-sim",
  "budget",
  "scale",
  "memory",
  "drizzle",
] as const;

const NOTES_BEGIN = "<!-- notes:begin -->";
const NOTES_END = "<!-- notes:end -->";

function cpuModel(): string {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    return line?.split(":")[1]?.trim() ?? cpus()[0]?.model ?? "unknown";
  } catch {
    return cpus()[0]?.model ?? "unknown";
  }
}

/** The revision measured, and whether src/ or migrations/ had uncommitted changes (read-only git). */
function revision(): string {
  const git = (args: string[]) =>
    spawnSync("git", args, { cwd: ROOT, encoding: "utf8" }).stdout?.trim() ?? "";
  const head = git(["rev-parse", "--short", "HEAD"]) || "unknown";
  const dirty = git(["status", "--porcelain", "--", "src", "migrations"])
    .split("\n")
    .filter(Boolean).length;
  return dirty > 0 ? `${head} + ${dirty} uncommitted file(s) in src/ or migrations/` : head;
}

function fmt(v: number | null): string {
  if (v === null) return "—";
  return Math.abs(v) >= 100 ? String(round(v, 1)) : String(round(v, 3));
}

function spreadOf(row: FigureRow): string {
  const r = row.detail?.ratio as { min: number; max: number; samples: number[] } | undefined;
  if (!r || r.samples.length < 2) return "";
  return `${fmt(r.min)}–${fmt(r.max)} (n=${r.samples.length})`;
}

function table(rows: FigureRow[]): string {
  const header = ["figure", "value", "baseline", "ratio", "ratio spread", "target", "pass"];
  const body = rows.map((r) => [
    r.name,
    fmt(r.value),
    fmt(r.baseline),
    fmt(r.ratio),
    spreadOf(r),
    r.target,
    r.pass ? "yes" : "NO",
  ]);
  return [header, header.map(() => "---"), ...body]
    .map((cells) => `| ${cells.join(" | ")} |`)
    .join("\n");
}

function plain(rows: FigureRow[]): string {
  const lines = [["figure", "value", "baseline", "ratio", "spread", "target", "pass"]];
  for (const r of rows) {
    lines.push([
      r.name,
      fmt(r.value),
      fmt(r.baseline),
      fmt(r.ratio),
      spreadOf(r),
      r.target,
      r.pass ? "yes" : "NO",
    ]);
  }
  const widths = lines[0]?.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? "").length))) ?? [];
  return lines.map((l) => l.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ")).join("\n");
}

async function runFigure(name: string): Promise<{ rows: FigureRow[]; seconds: number }> {
  const started = performance.now();
  process.stderr.write(`\n== ${name} ==\n`);
  const { code, stdout } = await runTs(`bench/${name}.ts`);
  const seconds = round((performance.now() - started) / 1000, 1);
  const line = stdout.split("\n").find((l) => l.startsWith(RESULT_PREFIX));
  if (code !== 0 || line === undefined) {
    return {
      seconds,
      rows: [
        {
          name,
          value: null,
          baseline: null,
          ratio: null,
          target: "runs",
          pass: false,
          detail: { error: `bench/${name}.ts exited with ${code}` },
        },
      ],
    };
  }
  return { seconds, rows: JSON.parse(line.slice(RESULT_PREFIX.length)) as FigureRow[] };
}

function keptNotes(path: string): string {
  try {
    const text = readFileSync(path, "utf8");
    const a = text.indexOf(NOTES_BEGIN);
    const b = text.indexOf(NOTES_END);
    if (a >= 0 && b > a) return text.slice(a + NOTES_BEGIN.length, b).trim();
  } catch {
    // first run: nothing to keep
  }
  return "";
}

function setupNotes(rows: FigureRow[]): string {
  return rows
    .map((r) => {
      const d = r.detail ?? {};
      const extra = Object.entries(d)
        .filter(
          ([k]) => !["ratio", "subject", "baselineSpread", "setup", "perSeed", "unit"].includes(k),
        )
        .map(([k, v]) => `${k} ${JSON.stringify(v)}`)
        .join("; ");
      const text = [String(d.setup ?? ""), extra].filter((t) => t !== "").join(". ");
      return `- **${r.name}** (${String(d.unit ?? "")})${text ? `: ${text}` : ""}`;
    })
    .join("\n");
}

async function main() {
  const opts = benchOptions();
  const wanted = process.argv.slice(2);
  const figures = wanted.length > 0 ? FIGURES.filter((f) => wanted.includes(f)) : [...FIGURES];
  const machine = {
    nproc: availableParallelism(),
    node: process.version,
    cpu: cpuModel(),
    memoryGb: round(totalmem() / 1024 ** 3, 1),
    loadBefore: loadavg().map((l) => round(l, 2)),
    revision: revision(),
  };
  process.stderr.write(
    `taskhook bench: ${figures.join(", ")}; ${opts.reps} pairs each${opts.quick ? " (quick)" : ""}\n` +
      `machine: ${machine.nproc} cpus (${machine.cpu}), node ${machine.node}, load ${machine.loadBefore.join(" ")}\n` +
      `revision: ${machine.revision}\n`,
  );
  const started = performance.now();
  const rows: FigureRow[] = [];
  const timings: string[] = [];
  for (const name of figures) {
    const result = await runFigure(name);
    rows.push(...result.rows);
    timings.push(`${name} ${result.seconds} s`);
  }
  const total = round((performance.now() - started) / 1000, 1);
  const loadAfter = loadavg().map((l) => round(l, 2));

  process.stdout.write(
    `\n${plain(rows)}\n\n${rows.filter((r) => !r.pass).length} of ${rows.length} figures miss their target; ${total} s\n`,
  );
  writeFileSync(join(ROOT, "bench/results.json"), `${JSON.stringify(rows, null, 2)}\n`);
  // In the formatter's own layout, so that `npm run lint` stays clean after a run.
  spawnSync(join(ROOT, "node_modules/.bin/biome"), ["format", "--write", "bench/results.json"], {
    cwd: ROOT,
    stdio: "ignore",
  });
  const mdPath = join(ROOT, "bench/RESULTS.md");
  const notes = keptNotes(mdPath);
  const md = `# taskhook benchmarks

Generated by \`npm run bench\` (bench/run.ts) on ${new Date().toISOString()}; ${total} s in all.
Revision measured: ${machine.revision}.

## Machine

- ${machine.nproc} CPUs (\`nproc\`), ${machine.cpu} (/proc/cpuinfo), ${machine.memoryGb} GB RAM
- node ${machine.node}
- load average ${machine.loadBefore.join(" ")} before, ${loadAfter.join(" ")} after: a shared machine,
  so every figure is a ratio to a baseline measured in the same run, in alternating pairs, and the
  spread of the ratios is shown.

## Commands

\`\`\`sh
npm run bench                       # every figure, ${opts.reps} pairs each (BENCH_REPS=n to change)
npm run bench -- polls webhooks     # some figures
BENCH_QUICK=1 npm run bench         # short runs: a check of the harness, not figures to quote
node --import tsx bench/polls.ts    # one figure alone; add --cpu-prof --cpu-prof-dir=/tmp/prof to profile it
node --import tsx bench/probes/page-writes.ts          # probe: a row update by table size and rows per commit
node --import tsx bench/probes/delivery-statements.ts  # probe: the deliverer's statements per delivery
node --import tsx bench/probes/memory-schedule.ts      # probe: a steady poll with the schedule in memory
node --import tsx bench/probes/layers.ts               # probe: each figure's HTTP layer alone, and what it leaves
node --import tsx bench/probes/api-cpu.ts              # probe: server CPU per POST /v1/watches (trivial, 400, 201)
\`\`\`

This run: ${figures.join(", ")}; ${opts.reps} pairs${opts.quick ? ", quick" : ""}. Time per figure: ${timings.join(", ")}.

## Results

Value and baseline are medians over the pairs; the ratio is the median of the per-pair ratios.

${table(rows)}

## How each figure is measured

${setupNotes(rows)}

## Notes

${NOTES_BEGIN}
${notes}
${NOTES_END}
`;
  writeFileSync(mdPath, md);
  spawnSync(join(ROOT, "node_modules/.bin/biome"), ["format", "--write", "bench/RESULTS.md"], {
    cwd: ROOT,
    stdio: "ignore",
  });
  process.stderr.write(`wrote bench/results.json and bench/RESULTS.md\n`);
}

void main();
