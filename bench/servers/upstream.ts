/**
 * The fake VibePeak upstream (test/support/fake-upstream.ts) in its own process, so that serving
 * polls does not share a CPU with the scheduler being measured.
 *
 *   node --import tsx bench/servers/upstream.ts '{"tasks":[{"prefix":"t_","count":1000,"keys":["vpk_a"],"lifecycle":[...]}]}'
 *
 * Prints `{"port":N}`, then answers control commands on stdin (see control.ts):
 * `addTasks {tasks}`, `reset`, `arrivals {from?, to?}` → `[at, taskId][]`, `stats {from?, to?}` → arrivals, the busiest 1 s window overall and
 * per key, the most requests in flight.
 */
import {
  busiestWindow,
  type LifecycleStep,
  type RecordedUpstreamRequest,
  startFakeUpstream,
} from "../../test/support/fake-upstream.js";
import { serveControl, specArg } from "./control.js";

export interface TaskBatch {
  /** Task ids are `${prefix}${i}`, i from `from` (default 0) for `count` tasks. */
  prefix: string;
  from?: number;
  count: number;
  /** Task i belongs to keys[i % keys.length]. */
  keys: string[];
  lifecycle: LifecycleStep[];
}

export interface UpstreamSpec {
  tasks: TaskBatch[];
}

function stats(requests: readonly RecordedUpstreamRequest[], from: number, to: number) {
  const byKey = new Map<string, number[]>();
  const all: number[] = [];
  let inRange = 0;
  for (const r of requests) {
    all.push(r.at);
    if (r.at >= from && r.at < to) inRange += 1;
    const list = byKey.get(r.apiKey ?? "") ?? [];
    list.push(r.at);
    byKey.set(r.apiKey ?? "", list);
  }
  let maxPerKey = 0;
  for (const times of byKey.values()) maxPerKey = Math.max(maxPerKey, busiestWindow(times, 1000));
  return { total: requests.length, inRange, maxInWindow: busiestWindow(all, 1000), maxPerKey };
}

async function main() {
  const spec = specArg<UpstreamSpec>();
  const upstream = await startFakeUpstream();
  const add = (batches: readonly TaskBatch[]) => {
    for (const b of batches) {
      for (let i = b.from ?? 0; i < (b.from ?? 0) + b.count; i += 1) {
        const apiKey = b.keys[i % b.keys.length] ?? "";
        upstream.addTask({ taskId: `${b.prefix}${i}`, apiKey, lifecycle: b.lifecycle });
      }
    }
  };
  add(spec.tasks ?? []);
  serveControl(
    upstream.port,
    (cmd) => {
      switch (cmd.op) {
        case "addTasks":
          add((cmd.tasks as TaskBatch[] | undefined) ?? []);
          return { ok: true };
        case "reset":
          upstream.reset();
          return { ok: true };
        case "arrivals":
          // Arrival times (and task ids) in [from, to): for rates and for matching sends to arrivals.
          return upstream.requests
            .filter(
              (r) =>
                r.at >= Number(cmd.from ?? 0) && r.at < Number(cmd.to ?? Number.MAX_SAFE_INTEGER),
            )
            .map((r) => [r.at, r.taskId]);
        case "stats":
          return {
            ...stats(
              upstream.requests,
              Number(cmd.from ?? 0),
              Number(cmd.to ?? Number.MAX_SAFE_INTEGER),
            ),
            maxInFlight: upstream.maxInFlight,
          };
        default:
          throw new Error(`unknown op ${cmd.op}`);
      }
    },
    () => upstream.close(),
  );
}

void main();
