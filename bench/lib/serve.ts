import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { runTs } from "./child.js";

/** Serves `fetch` with @hono/node-server on 127.0.0.1, on a free port. */
export function listen(fetch: (req: Request) => Response | Promise<Response>): Promise<Server> {
  return new Promise((resolve) => {
    const server = serve({ fetch, port: 0, hostname: "127.0.0.1" }, () =>
      resolve(server as Server),
    );
  });
}

export interface LoadResult {
  rps: number;
  total: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** POST /v1/watches load from autocannon in its own process (bench/lib/load.ts) against `server`. */
export async function postWatchesLoad(
  server: Server,
  spec: {
    seconds: number;
    connections: number;
    keys: string[];
    run: string;
    callbackUrl?: string;
  },
): Promise<LoadResult> {
  const { port } = server.address() as AddressInfo;
  const args = { url: `http://127.0.0.1:${port}`, path: "/v1/watches", ...spec };
  const { code, stdout } = await runTs("bench/lib/load.ts", [JSON.stringify(args)]);
  if (code !== 0) throw new Error(`autocannon exited with ${code}`);
  return JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as LoadResult;
}
