import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Answer, DeadlineError, exchange, type OutboundRequest } from "../src/outbound.js";

/** A server whose every answer the test writes by hand: stalls, resets, bodies in pieces. */
let server: Server;
let origin: string;
let agent: Agent;
let answer: (req: IncomingMessage, res: ServerResponse) => void;

beforeEach(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => answer(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  agent = new Agent({ connections: 1 });
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await agent.destroy();
});

const request = (over: Partial<OutboundRequest> = {}): OutboundRequest => ({
  origin,
  path: "/x?y=1",
  method: "GET",
  headers: { accept: "application/json" },
  // Long enough for any answer on a loaded machine; a test about the deadline sets a short one.
  timeoutMs: 5000,
  maxBodyBytes: 16,
  ...over,
});

describe("exchange", () => {
  it("gives the status, the headers and the whole body, and sends path, method, headers and body", async () => {
    let seen: { url?: string; method?: string; header?: string; body: string } = { body: "" };
    server.removeAllListeners("request");
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString();
      });
      req.on("end", () => {
        seen = { url: req.url, method: req.method, header: req.headers["x-test"] as string, body };
        res.writeHead(201, { "retry-after": "7" });
        res.end("created");
      });
    });
    const res = await exchange(
      agent,
      request({ method: "POST", headers: { "x-test": "yes" }, body: "hello" }),
    );
    expect(seen).toEqual({ url: "/x?y=1", method: "POST", header: "yes", body: "hello" });
    expect(res).toMatchObject({ statusCode: 201, incomplete: null });
    expect(res.headers["retry-after"]).toBe("7");
    expect(res.body.toString()).toBe("created");
  });

  it("reads a body shorter than maxBodyBytes whole, and stops once maxBodyBytes have come", async () => {
    answer = (_req, res) => res.end("a".repeat(15));
    const whole = await exchange(agent, request());
    expect(whole.incomplete).toBeNull();
    expect(whole.body.toString()).toBe("a".repeat(15));

    // The rest is never sent: only a reader that stops settles before the deadline.
    answer = (_req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write("b".repeat(16));
    };
    const started = performance.now();
    const cut = await exchange(agent, request({ timeoutMs: 5000 }));
    expect(cut.incomplete).toBe("cut");
    expect(cut.body.toString()).toBe("b".repeat(16));
    expect(performance.now() - started).toBeLessThan(4000);
  });

  it("cuts the last chunk of an answer on a closing connection, and the next request still goes", async () => {
    answer = (_req, res) => {
      res.writeHead(200, { connection: "close", "content-length": "2000" });
      res.end("c".repeat(2000));
    };
    const cut = await exchange(agent, request({ timeoutMs: 5000 }));
    expect(cut.incomplete).toBe("cut");
    answer = (_req, res) => res.end("ok");
    const next = await exchange(agent, request({ timeoutMs: 5000 }));
    expect(next).toMatchObject({ statusCode: 200, incomplete: null });
    expect(next.body.toString()).toBe("ok");
  });

  it("keeps the status and what arrived of a body that stalls past the deadline", async () => {
    answer = (_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("part");
    };
    const res = await exchange(agent, request({ timeoutMs: 300 }));
    expect(res.statusCode).toBe(200);
    expect(res.body.toString()).toBe("part");
    expect(res.incomplete).toBeInstanceOf(DeadlineError);
  });

  it("keeps the status and what arrived of a body broken off by a reset", async () => {
    answer = (_req, res) => {
      res.writeHead(502, { "content-length": "100" });
      res.write("oops", () => res.socket?.destroy());
    };
    const res: Answer = await exchange(agent, request());
    expect(res.statusCode).toBe(502);
    expect(res.body.toString()).toBe("oops");
    expect(res.incomplete).toBeInstanceOf(Error);
    expect(res.incomplete).not.toBeInstanceOf(DeadlineError);
  });

  it("fails with a TimeoutError when no answer comes before the deadline", async () => {
    answer = () => {};
    const started = performance.now();
    const err = await exchange(agent, request({ timeoutMs: 300 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineError);
    expect((err as Error).name).toBe("TimeoutError");
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
  });

  it("times out a request still queued for the socket at its own deadline", async () => {
    // One socket: the second request waits behind the first, which never gets an answer.
    answer = () => {};
    const first = exchange(agent, request({ timeoutMs: 2000 })).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    const second = await exchange(agent, request({ timeoutMs: 200 })).catch((e: unknown) => e);
    const waited = performance.now() - started;
    expect(second).toBeInstanceOf(DeadlineError);
    expect(waited).toBeGreaterThanOrEqual(150);
    expect(waited).toBeLessThan(1500);
    expect(await first).toBeInstanceOf(DeadlineError);
  });

  it("fails with the connection's error when nothing listens", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const err = await exchange(agent, request({ origin: `http://127.0.0.1:${port}` })).catch(
      (e: unknown) => e,
    );
    expect((err as NodeJS.ErrnoException).code).toBe("ECONNREFUSED");
  });

  it("fails at once when the dispatcher throws, without waiting for the deadline", async () => {
    const throwing = {
      dispatch: () => {
        throw new TypeError("no dispatch today");
      },
    } as unknown as Agent;
    const started = performance.now();
    const err = await exchange(throwing, request({ timeoutMs: 5000 })).catch((e: unknown) => e);
    expect((err as Error).message).toBe("no dispatch today");
    expect(performance.now() - started).toBeLessThan(4000);
  });

  it("fails at once on a dispatcher already closed, without waiting for the deadline", async () => {
    await agent.close();
    const started = performance.now();
    const err = await exchange(agent, request({ timeoutMs: 5000 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(performance.now() - started).toBeLessThan(4000);
  });
});
