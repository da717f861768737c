/**
 * A probe, not a figure: the server's CPU time per POST /v1/watches request, which is steadier than
 * requests per second on a shared machine. autocannon (its own process, 16 connections) drives, in
 * turn, the trivial Hono route, the real app answering 400 (a callback URL on a private address: no
 * database statement) and the real app answering 201 (a new watch each time). CPU is this process's
 * (every thread: the WAL checkpoints too) over the requests served.
 *
 * The first round includes the JIT's warm-up; read the second.
 *
 *   node --import tsx bench/probes/api-cpu.ts              # each mode, two rounds
 *   LOG_LEVEL=warn node --import tsx bench/probes/api-cpu.ts 400   # without the access line
 */
import { join } from "node:path";
import { loadConfig } from "../../src/config.js";
import { startCheckpointer } from "../../src/db/checkpointer.js";
import { openDatabase } from "../../src/db/client.js";
import { devNullLogger, scratchDir } from "../lib/quiet.js";
import { listen, postWatchesLoad } from "../lib/serve.js";
import { serviceApp, trivialApp } from "../registrations.js";

const KEYS = Array.from({ length: 100 }, (_, i) => `vpk_probe_cpu_${i}`);
const ROUNDS = 2;
const SECONDS = 3;

const scratch = scratchDir("probe-api-cpu");
const dbPath = join(scratch.dir, "api-cpu.db");
const db = openDatabase(dbPath);
const checkpointer = startCheckpointer(db, dbPath, devNullLogger());
const level = process.env.LOG_LEVEL ?? "info";
const app = serviceApp(db, loadConfig({ DATABASE_URL: dbPath, LOG_LEVEL: level }));
const real = await listen(app.fetch);
const trivial = await listen(trivialApp().fetch);

const modes: Array<[string, typeof real, string | undefined]> = [
  ["trivial", trivial, undefined],
  ["400", real, "http://127.0.0.1:9/hook"],
  ["201", real, undefined],
];
const wanted = process.argv.slice(2);
let run = 0;
console.log(`LOG_LEVEL=${level}`);
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, server, callbackUrl] of modes) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    run += 1;
    const cpu = process.cpuUsage();
    const result = await postWatchesLoad(server, {
      seconds: SECONDS,
      connections: 16,
      keys: KEYS,
      run: `cpu${run}`,
      ...(callbackUrl ? { callbackUrl } : {}),
    });
    const used = process.cpuUsage(cpu);
    const per = (micros: number) => (micros / result.total).toFixed(1);
    console.log(
      `${name.padEnd(8)} ${Math.round(result.rps)} req/s, CPU per request ${per(used.user + used.system)} µs (user ${per(used.user)}, system ${per(used.system)})`,
    );
  }
}
await checkpointer.stop();
await new Promise((resolve) => real.close(resolve));
await new Promise((resolve) => trivial.close(resolve));
db.$client.close();
scratch.cleanup();
process.exit(0);
