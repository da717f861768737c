import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createUpstreamClient,
  MAX_ANSWER_BYTES,
  type UpstreamClient,
} from "../../src/scheduler/upstream.js";

/** Answers the fake upstream does not give: oversized bodies, a base URL with a path. */
let server: Server;
let base: string;
let client: UpstreamClient;
let seenPath: string | undefined;
let answer: (res: ServerResponse) => void;

beforeEach(async () => {
  server = createServer((req, res) => {
    seenPath = req.url;
    req.resume();
    req.on("end", () => answer(res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  client = createUpstreamClient({ baseUrl: `${base}/api/`, timeoutMs: 300, connections: 2 });
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await client.destroy();
});

const task = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ task_id: "task_1", status: "processing", ...extra });

describe("the upstream client", () => {
  it("keeps the base URL's path and encodes the task id", async () => {
    answer = (res) => res.end(task());
    const result = await client.getTask("task 1/a", "vpk_k", 0);
    expect(seenPath).toBe("/api/v1/tasks/task%201%2Fa");
    expect(result).toMatchObject({ kind: "ok", task: { task_id: "task_1" } });
  });

  it(`takes a 200 answer longer than ${MAX_ANSWER_BYTES} bytes for a bad response, not a task`, async () => {
    const padding = "x".repeat(MAX_ANSWER_BYTES);
    answer = (res) => res.end(task({ padding }));
    expect(await client.getTask("task_1", "vpk_k", 0)).toEqual({
      kind: "fault",
      outcome: "bad_response",
      message: `the answer is longer than ${MAX_ANSWER_BYTES} bytes`,
    });
    // An answer of exactly the limit is a task like any other; one byte more is not.
    const exact = padding.slice(0, MAX_ANSWER_BYTES - task({ padding: "" }).length);
    expect(task({ padding: exact })).toHaveLength(MAX_ANSWER_BYTES);
    answer = (res) => res.end(task({ padding: exact }));
    expect(await client.getTask("task_1", "vpk_k", 0)).toMatchObject({ kind: "ok" });
    answer = (res) => res.end(task({ padding: `${exact}x` }));
    expect(await client.getTask("task_1", "vpk_k", 0)).toMatchObject({ outcome: "bad_response" });
  });

  it("reads the status of a long 404 without its body", async () => {
    answer = (res) => {
      res.writeHead(404, { "content-type": "text/html" });
      res.end("x".repeat(MAX_ANSWER_BYTES * 2));
    };
    expect(await client.getTask("task_1", "vpk_k", 0)).toEqual({
      kind: "rejected",
      code: "TASK_NOT_FOUND",
    });
  });

  it("takes a 200 whose body stalls for a time-out", async () => {
    answer = (res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write('{"task_id":');
    };
    expect(await client.getTask("task_1", "vpk_k", 0)).toMatchObject({
      kind: "fault",
      outcome: "timeout",
    });
  });
});
