/**
 * A probe, not a figure: how much of each throughput figure's budget taskhook's HTTP layer spends
 * before any database work, measured against the figure's own baseline in alternating pairs.
 *
 * - polls: the bare undici GET loop against the same loop calling taskhook's upstream client
 *   (`getTask`: deadline, JSON parse, answer validation);
 * - webhooks: the bare undici POST loop against the same loop calling taskhook's sender (Standard
 *   Webhooks headers and signature, guarded connector, response excerpt);
 * - registrations: the trivial Hono route against the real app answering POST /v1/watches with a
 *   callback URL on a private address: request id, access log line, body limit, API key, body
 *   validation and the address check run, then the 400 VALIDATION_ERROR; no database statement.
 *   It renders the error envelope where a registration renders its watch: about the same work.
 *
 * The layer's ratio is a ceiling on the figure: the scheduler, deliverer or registration with their
 * database work can only add time. "Left per operation" is what the figure's target leaves for that
 * work: 1/(target × baseline) − 1/layer, in µs; negative means the layer alone misses the target.
 *
 * - dispatch (only when named): each bare loop against the same loop on undici's `dispatch` with
 *   the least handler (`bareDispatch`): what the baselines spend in `request` and its body stream,
 *   which taskhook's client (src/outbound.ts) does not. A ceiling for any client built on undici.
 *
 *   node --import tsx bench/probes/layers.ts [polls] [webhooks] [registrations] [dispatch]
 */
import { join } from "node:path";
import { Agent } from "undici";
import { loadConfig } from "../../src/config.js";
import { openDatabase } from "../../src/db/client.js";
import { createSender } from "../../src/delivery/sender.js";
import { webhookBody } from "../../src/domain/webhook-body.js";
import { createUpstreamClient } from "../../src/scheduler/upstream.js";
import { startServerChild } from "../lib/child.js";
import { benchOptions } from "../lib/figure.js";
import { bareDispatch, bareGets, barePosts, closedLoop, drainLoop } from "../lib/loops.js";
import { measurePairs, type PairResult } from "../lib/pairs.js";
import { scratchDir } from "../lib/quiet.js";
import { listen, postWatchesLoad } from "../lib/serve.js";
import { round } from "../lib/stats.js";
import { serviceApp, trivialApp } from "../registrations.js";

/** As in bench/polls.ts, bench/webhooks.ts and bench/registrations.ts. */
const POLL_TARGETS = 1_000;
const POLL_KEYS = Array.from({ length: 20 }, (_, i) => `vpk_probe_layers_${i}`);
const POLL_CONCURRENCY = 32;
const HOOKS = 5_000;
const HOOK_CONCURRENCY = 64;
const HOOK_CONNECTIONS = 16;
const REG_KEYS = Array.from({ length: 100 }, (_, i) => `vpk_probe_reg_${i}`);
const REG_CONNECTIONS = 16;

interface Layer {
  name: string;
  /** The figure's target; none for the dispatch rows, which compare two baselines. */
  target: number | null;
  pair: PairResult;
}

const TASK_PREFIX = "task_layers_";

/** The fake upstream in its own process, with POLL_TARGETS tasks processing. */
function startUpstream() {
  return startServerChild("bench/servers/upstream.ts", {
    tasks: [
      {
        prefix: TASK_PREFIX,
        count: POLL_TARGETS,
        keys: POLL_KEYS,
        lifecycle: [{ status: "processing", started_at: new Date().toISOString() }],
      },
    ],
  });
}

/** The n-th GET of a loop: the tasks and keys in turn. */
function taskOf(n: number) {
  const i = n % POLL_TARGETS;
  return { taskId: `${TASK_PREFIX}${i}`, apiKey: POLL_KEYS[i % POLL_KEYS.length] ?? "" };
}

async function upstreamClientLayer(reps: number, seconds: number): Promise<Layer> {
  const upstream = await startUpstream();
  try {
    // Both fake servers keep what they receive: each measurement starts from an empty record.
    const bare = async () => {
      await upstream.call("reset");
      return bareGets(upstream.url, POLL_CONCURRENCY, seconds, taskOf);
    };
    const client = async () => {
      await upstream.call("reset");
      const c = createUpstreamClient({
        baseUrl: upstream.url,
        timeoutMs: 10_000,
        connections: POLL_CONCURRENCY,
      });
      const rate = await closedLoop(POLL_CONCURRENCY, seconds, async (n) => {
        const { taskId, apiKey } = taskOf(n);
        const result = await c.getTask(taskId, apiKey, Date.now());
        if (result.kind !== "ok") throw new Error(`upstream answered ${result.kind}`);
      });
      await c.close();
      return rate;
    };
    const pair = await measurePairs("upstream client", reps, bare, client);
    return { name: "polls/s: upstream client (GET, parse, validate)", target: 0.7, pair };
  } finally {
    await upstream.stop();
  }
}

async function senderLayer(reps: number): Promise<Layer> {
  const receiver = await startServerChild("bench/servers/receiver.ts");
  const url = `${receiver.url}/hooks/vibepeak`;
  const now = Date.now();
  const bodies = Array.from({ length: HOOKS }, (_, i) =>
    JSON.stringify(
      webhookBody({
        type: "task.completed",
        eventId: `evt_layers_${i}`,
        now,
        watchId: `wch_layers_${i}`,
        sequence: 2,
        taskId: `task_layers_${i}`,
        status: "completed",
        previousStatus: "processing",
        task: {
          task_id: `task_layers_${i}`,
          status: "completed",
          result: { video_url: `https://cdn.vibepeak.ai/videos/task_layers_${i}.mp4` },
        },
        metadata: null,
      }),
    ),
  );
  const secrets = [`whsec_${Buffer.alloc(32, 7).toString("base64")}`];
  try {
    const bare = async () => {
      await receiver.call("reset");
      return barePosts(url, bodies, HOOK_CONCURRENCY, HOOK_CONNECTIONS);
    };
    const signed = async () => {
      await receiver.call("reset");
      const sender = createSender({
        timeoutMs: 15_000,
        allowPrivate: true,
        connections: HOOK_CONNECTIONS,
      });
      const rate = await drainLoop(HOOK_CONCURRENCY, HOOKS, async (i) => {
        const body = bodies[i] ?? "";
        const attempt = await sender.send({ url, id: `evt_layers_${i}`, body, secrets }, now);
        if (attempt.statusCode !== 200) throw new Error(`receiver answered ${attempt.error}`);
      });
      await sender.close();
      return rate;
    };
    const pair = await measurePairs("webhook sender", reps, bare, signed);
    return { name: "webhooks/s: sender (sign, POST, excerpt)", target: 0.6, pair };
  } finally {
    await receiver.stop();
  }
}

async function apiLayer(reps: number, seconds: number): Promise<Layer> {
  const scratch = scratchDir("probe-layers");
  const dbPath = join(scratch.dir, "layers.db");
  const db = openDatabase(dbPath);
  const app = serviceApp(db, loadConfig({ DATABASE_URL: dbPath, LOG_LEVEL: "info" }));
  const real = await listen(app.fetch);
  const base = await listen(trivialApp().fetch);
  let runs = 0;
  const load = async (server: typeof real, callbackUrl?: string) => {
    runs += 1;
    const spec = { seconds, connections: REG_CONNECTIONS, keys: REG_KEYS, run: `l${runs}` };
    const result = await postWatchesLoad(server, {
      ...spec,
      ...(callbackUrl ? { callbackUrl } : {}),
    });
    if (result.errors > 0 || result.timeouts > 0) {
      throw new Error(`POST /v1/watches: ${result.errors} errors, ${result.timeouts} time-outs`);
    }
    if (callbackUrl && result.non2xx !== result.total) {
      throw new Error(`${result.total - result.non2xx} registrations were accepted`);
    }
    return result.rps;
  };
  try {
    const pair = await measurePairs(
      "API before the database",
      reps,
      () => load(base),
      () => load(real, "http://127.0.0.1:9/hook"),
    );
    const stored = db.$client.prepare("SELECT count(*) AS n FROM watches").get() as { n: number };
    if (stored.n !== 0) throw new Error(`${stored.n} watches stored`);
    return { name: "POST /v1/watches: API up to the database", target: 0.35, pair };
  } finally {
    await new Promise((resolve) => real.close(resolve));
    await new Promise((resolve) => base.close(resolve));
    db.$client.close();
    scratch.cleanup();
  }
}

/** The bare GET and POST loops against the same loops on `dispatch` (see the header). */
async function dispatchLayers(reps: number, seconds: number): Promise<Layer[]> {
  const upstream = await startUpstream();
  const receiver = await startServerChild("bench/servers/receiver.ts");
  const bodies = Array.from({ length: HOOKS }, (_, i) =>
    JSON.stringify({ n: i, pad: "x".repeat(400) }),
  );
  try {
    const origin = new URL(upstream.url).origin;
    const gets = await measurePairs(
      "GET: request vs dispatch",
      reps,
      async () => {
        await upstream.call("reset");
        return bareGets(upstream.url, POLL_CONCURRENCY, seconds, taskOf);
      },
      async () => {
        await upstream.call("reset");
        const agent = new Agent({ connections: POLL_CONCURRENCY, keepAliveTimeout: 30_000 });
        const rate = await closedLoop(POLL_CONCURRENCY, seconds, (n) => {
          const { taskId, apiKey } = taskOf(n);
          return bareDispatch(agent, {
            origin,
            path: `/v1/tasks/${taskId}`,
            method: "GET",
            headers: { authorization: `Bearer ${apiKey}`, accept: "application/json" },
          });
        });
        await agent.close();
        return rate;
      },
    );
    const url = new URL(`${receiver.url}/hooks/vibepeak`);
    const posts = await measurePairs(
      "POST: request vs dispatch",
      reps,
      async () => {
        await receiver.call("reset");
        return barePosts(url.href, bodies, HOOK_CONCURRENCY, HOOK_CONNECTIONS);
      },
      async () => {
        await receiver.call("reset");
        const agent = new Agent({ connections: HOOK_CONNECTIONS, keepAliveTimeout: 10_000 });
        const rate = await drainLoop(HOOK_CONCURRENCY, bodies.length, (i) =>
          bareDispatch(agent, {
            origin: url.origin,
            path: url.pathname,
            method: "POST",
            headers: { "content-type": "application/json" },
            body: bodies[i] ?? "",
          }),
        );
        await agent.close();
        return rate;
      },
    );
    return [
      { name: "bare GET loop on dispatch, against request", target: null, pair: gets },
      { name: "bare POST loop on dispatch, against request", target: null, pair: posts },
    ];
  } finally {
    await upstream.stop();
    await receiver.stop();
  }
}

async function main() {
  const opts = benchOptions();
  const seconds = opts.quick ? 1 : 3;
  const only = process.argv.slice(2);
  const wanted = (name: string) => only.length === 0 || only.includes(name);
  const layers: Layer[] = [];
  if (only.includes("dispatch")) layers.push(...(await dispatchLayers(opts.reps, seconds)));
  if (wanted("polls")) layers.push(await upstreamClientLayer(opts.reps, seconds));
  if (wanted("webhooks")) layers.push(await senderLayer(opts.reps));
  if (wanted("registrations")) layers.push(await apiLayer(opts.reps, seconds));
  console.log(
    "\n| layer | baseline /s | layer /s | ratio (spread) | figure's target | left per operation |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const { name, target, pair } of layers) {
    const left =
      target === null
        ? "—"
        : `${round(1e6 / (target * pair.baseline.median) - 1e6 / pair.subject.median, 1)} µs`;
    console.log(
      `| ${name} | ${round(pair.baseline.median, 0)} | ${round(pair.subject.median, 0)} | ${round(pair.ratio.median, 3)} (${round(pair.ratio.min, 2)}–${round(pair.ratio.max, 2)}) | ${target === null ? "—" : `≥ ${target}`} | ${left} |`,
    );
  }
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
