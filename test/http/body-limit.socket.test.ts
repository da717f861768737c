import { request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { afterEach, describe, expect, it } from "vitest";
import { createTestContext, KEY_A, type TestContext, tableCounts } from "../support/context.js";

/**
 * The body limit as Node serves it: with a declared length the adapter reads the body straight from
 * the socket (Node's parser bounds it), without one it is streamed and counted. The other body tests
 * go through `app.request`, which never takes the first path.
 */

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

async function listen(t: TestContext): Promise<number> {
  const started = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: t.app.fetch, port: 0, hostname: "127.0.0.1" }, () =>
      resolve(s as Server),
    );
  });
  server = started;
  return (started.address() as AddressInfo).port;
}

/** POSTs /v1/watches over a socket: with `content-length` as given (a number, or none: chunked). */
function post(
  port: number,
  body: string,
  contentLength: number | "none" = Buffer.byteLength(body),
): Promise<{ status: number; body: { error?: { code: string } } & Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${KEY_A}`,
      "content-type": "application/json",
      connection: "close",
    };
    if (contentLength !== "none") headers["content-length"] = String(contentLength);
    const req = httpRequest(
      { host: "127.0.0.1", port, method: "POST", path: "/v1/watches", headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}"),
          }),
        );
      },
    );
    req.on("error", reject);
    // Chunked: written in pieces, so that it really streams.
    for (let i = 0; i < body.length; i += 8192) req.write(body.slice(i, i + 8192));
    req.end();
  });
}

function padded(bytes: number, taskId = "task_socket"): string {
  const json = JSON.stringify({ task_id: taskId, callback_url: "https://hooks.example.com/x" });
  return json + " ".repeat(bytes - json.length);
}

describe("request bodies over a real socket", () => {
  it("with a declared length: 64 KiB is read and registered, one byte more is 413 before reading", async () => {
    const t = createTestContext();
    const port = await listen(t);
    expect((await post(port, padded(65_536))).status).toBe(201);
    const before = tableCounts(t.db);
    const res = await post(port, padded(65_537, "task_socket_2"));
    expect(res.status).toBe(413);
    expect(res.body.error?.code).toBe("PAYLOAD_TOO_LARGE");
    expect(tableCounts(t.db)).toEqual(before);
  });

  it("chunked, without a length: counted while read, 413 past 64 KiB, and a small one registers", async () => {
    const t = createTestContext();
    const port = await listen(t);
    const before = tableCounts(t.db);
    const res = await post(port, padded(70_000), "none");
    expect(res.status).toBe(413);
    expect(tableCounts(t.db)).toEqual(before);
    expect((await post(port, padded(300, "task_small"), "none")).status).toBe(201);
  });

  it("a declared length shorter than the body: only that much is read, and nothing is stored", async () => {
    const t = createTestContext();
    const port = await listen(t);
    const before = tableCounts(t.db);
    const res = await post(port, padded(70_000), 40);
    // The first answer on the connection is a 400: the app's (the cut JSON) or Node's own (the rest
    // of the body parsed as a next request), whichever is written first.
    expect(res.status).toBe(400);
    expect(tableCounts(t.db)).toEqual(before);
  });
});
