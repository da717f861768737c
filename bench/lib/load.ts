/**
 * autocannon in its own process (so that the load generator does not share the server's event loop):
 * `node --import tsx bench/lib/load.ts '<json>'` prints one JSON line with requests/s and errors.
 *
 * Every request registers a new task (`task_id` from a counter unique to this run) under one of
 * `keys` in turn: many tenants, as a real service sees, each far below MAX_ACTIVE_WATCHES_PER_KEY.
 */
import autocannon from "autocannon";

interface LoadSpec {
  url: string;
  path: string;
  seconds: number;
  connections: number;
  keys: string[];
  /** Makes task ids unique across the runs of one benchmark. */
  run: string;
  /** Default: a public https URL, so that every registration is accepted. */
  callbackUrl?: string;
}

async function main() {
  const spec = JSON.parse(process.argv[2] ?? "{}") as LoadSpec;
  let n = 0;
  const result = await autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.seconds,
    requests: [
      {
        method: "POST",
        path: spec.path,
        setupRequest: (req) => {
          n += 1;
          const key = spec.keys[n % spec.keys.length] ?? "";
          return {
            ...req,
            headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
            body: JSON.stringify({
              task_id: `task_${spec.run}_${n}`,
              callback_url: spec.callbackUrl ?? "https://app.example.com/hooks/vibepeak",
              metadata: { order_id: n },
            }),
          };
        },
      },
    ],
  });
  const rps = result.requests.total / result.duration;
  process.stdout.write(
    `${JSON.stringify({
      rps,
      total: result.requests.total,
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      latencyP50: result.latency.p50,
      latencyP99: result.latency.p99,
    })}\n`,
  );
}

void main();
