import { Agent, request } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { timeOutOnceArrived } from "./client-timeout.js";
import { type Receiver, redirect, startReceiver } from "./receiver.js";

const T0 = Date.parse("2026-01-04T12:00:00Z");

let clock: ManualClock;
let receiver: Receiver;
let agent: Agent;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function post(
  path: string,
  body = '{"type":"ping"}',
  opts: { headers?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<Answer> {
  const res = await request(`${receiver.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...opts.headers },
    body,
    dispatcher: agent,
    signal: opts.signal ?? AbortSignal.timeout(opts.timeoutMs ?? 5_000),
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function statuses(path: string, n: number): Promise<number[]> {
  const seen: number[] = [];
  for (let i = 0; i < n; i += 1) seen.push((await post(path)).status);
  return seen;
}

beforeEach(async () => {
  clock = new ManualClock(T0);
  receiver = await startReceiver({ clock });
  agent = new Agent();
});

afterEach(async () => {
  await agent.close();
  await receiver.close();
});

describe("recording", () => {
  it("records path, query, lower-cased headers, raw body and parsed JSON", async () => {
    const body = '{ "type": "task.completed", "data": {"sequence": 3} }';

    const answer = await post("/hooks/a?tenant=1", body, {
      headers: { "Webhook-Id": "evt_1", "X-Custom": "Yes" },
    });

    expect(answer).toMatchObject({ status: 200, text: "ok" });
    expect(receiver.requests).toHaveLength(1);
    const [got] = receiver.requests;
    expect(got).toMatchObject({
      at: T0,
      method: "POST",
      path: "/hooks/a",
      query: "?tenant=1",
      body,
      json: { type: "task.completed", data: { sequence: 3 } },
    });
    expect(got?.headers["webhook-id"]).toBe("evt_1");
    expect(got?.headers["x-custom"]).toBe("Yes");
    expect(got?.headers["content-type"]).toBe("application/json");
  });

  it("keeps a body that is not JSON, with json null", async () => {
    await post("/x", "not { json");
    await post("/x", "");

    expect(receiver.requests.map((r) => [r.body, r.json])).toEqual([
      ["not { json", null],
      ["", null],
    ]);
  });

  it("stamps each request with the injected clock and filters by path", async () => {
    await post("/a");
    clock.advance(5_000);
    await post("/b");
    await post("/a");

    expect(receiver.requests.map((r) => r.at - T0)).toEqual([0, 5_000, 5_000]);
    expect(receiver.requestsTo("/a")).toHaveLength(2);
  });
});

describe("programmed answers", () => {
  it("answers queued replies in order, then the default 200", async () => {
    receiver.enqueue([
      { status: 500 },
      { status: 503, headers: { "retry-after": "7" }, body: "busy" },
    ]);

    const first = await post("/h");
    const second = await post("/h");
    const third = await post("/h");

    expect(first.status).toBe(500);
    expect(second).toMatchObject({ status: 503, text: "busy" });
    expect(second.headers["retry-after"]).toBe("7");
    expect(third).toMatchObject({ status: 200, text: "ok" });
  });

  it("serves a path's own queue before the global one", async () => {
    receiver.enqueue({ status: 410 }, "/gone");
    receiver.enqueue({ status: 429 });

    expect(await statuses("/other", 2)).toEqual([429, 200]);
    expect(await statuses("/gone", 2)).toEqual([410, 200]);
  });

  it("respondWith(status, times) then falls back to 200", async () => {
    receiver.respondWith(500, 2);

    expect(await statuses("/h", 3)).toEqual([500, 500, 200]);
  });

  it("respondWith(status) holds until the responder is cleared", async () => {
    receiver.respondWith(503, undefined, "/down");

    expect(await statuses("/down", 3)).toEqual([503, 503, 503]);
    expect(await statuses("/up", 1)).toEqual([200]);

    receiver.setResponder(null, "/down");
    expect(await statuses("/down", 1)).toEqual([200]);
  });

  it("calls a responder with the request and its number on that path", async () => {
    receiver.setResponder(
      (req, n) => ({ status: n < 3 ? 500 : 204, body: `${req.path}#${n}` }),
      "/r",
    );
    receiver.setResponder((_req, n) => ({ status: 202, body: `any#${n}` }));

    const answers = [
      await post("/r"),
      await post("/elsewhere"),
      await post("/r"),
      await post("/r"),
    ];

    expect(answers.map((a) => [a.status, a.text])).toEqual([
      [500, "/r#1"],
      [202, "any#2"],
      [500, "/r#2"],
      [204, ""],
    ]);
  });

  it("redirects without the client following", async () => {
    receiver.enqueue(redirect("http://127.0.0.1:9/elsewhere", 307));

    const answer = await post("/h");

    expect(answer.status).toBe(307);
    expect(answer.headers.location).toBe("http://127.0.0.1:9/elsewhere");
    expect(receiver.requests).toHaveLength(1);
  });

  it("delays a reply past a client time-out", async () => {
    receiver.enqueue({ status: 200, delayMs: 10_000 });

    await expect(
      post("/slow", "{}", { signal: timeOutOnceArrived(() => receiver.requests.length > 0) }),
    ).rejects.toMatchObject({
      name: "TimeoutError",
    });
    expect(receiver.requests).toHaveLength(1);
  });

  it("delivers a delayed reply to a patient client", async () => {
    receiver.enqueue({ status: 201, body: "late", delayMs: 30 });

    expect(await post("/slow")).toMatchObject({ status: 201, text: "late" });
  });

  it("resets the connection after reading the request", async () => {
    receiver.enqueue("reset");

    await expect(post("/h")).rejects.toMatchObject({ code: "UND_ERR_SOCKET" });
    expect(receiver.requests).toHaveLength(1);
    expect((await post("/h")).status).toBe(200);
  });

  it("hangs until closed", async () => {
    receiver.enqueue("hang");

    const pending = post("/h", "{}", { timeoutMs: 10_000 });
    await receiver.waitFor(1, 2_000);
    await receiver.close();

    await expect(pending).rejects.toMatchObject({ code: "UND_ERR_SOCKET" });
  });

  it("reset() clears the log and the programming", async () => {
    receiver.respondWith(500);
    receiver.enqueue({ status: 418 }, "/t");
    await post("/h");

    receiver.reset();

    expect(receiver.requests).toEqual([]);
    expect(await statuses("/t", 1)).toEqual([200]);
  });
});

describe("waitFor", () => {
  it("resolves once the count is reached", async () => {
    const waiting = receiver.waitFor(2, 2_000);
    await post("/a");
    await post("/b");

    const got = await waiting;

    expect(got.map((r) => r.path)).toEqual(["/a", "/b"]);
  });

  it("resolves at once when already satisfied, and on a predicate", async () => {
    await post("/a", '{"n":1}');

    await expect(receiver.waitFor(1, 10)).resolves.toHaveLength(1);
    const waiting = receiver.waitFor((rs) => rs.some((r) => r.path === "/b"), 2_000);
    await post("/b");
    await expect(waiting).resolves.toHaveLength(2);
  });

  it("rejects on time-out with what was recorded", async () => {
    await post("/only");

    await expect(receiver.waitFor(3, 50)).rejects.toThrow(
      "receiver.waitFor: timed out after 50 ms waiting for 3 request(s); 1 recorded: [POST /only]",
    );
  });

  it("rejects pending waits when the receiver closes", async () => {
    const waiting = receiver.waitFor(1, 10_000);

    await receiver.close();

    await expect(waiting).rejects.toThrow("receiver closed");
  });
});

describe("outages", () => {
  it("refuses connections while down and listens again on the same port", async () => {
    const url = receiver.url;
    expect((await post("/h")).status).toBe(200);

    await receiver.down();

    expect(receiver.isUp).toBe(false);
    await expect(post("/h")).rejects.toMatchObject({ code: "ECONNREFUSED" });

    await receiver.up();

    expect(receiver.isUp).toBe(true);
    expect(receiver.url).toBe(url);
    expect((await post("/h")).status).toBe(200);
    expect(receiver.requests).toHaveLength(2);
  });

  it("drops a hanging request when going down", async () => {
    receiver.enqueue("hang");
    const pending = post("/h", "{}", { timeoutMs: 10_000 });
    await receiver.waitFor(1, 2_000);

    await receiver.down();

    await expect(pending).rejects.toMatchObject({ code: "UND_ERR_SOCKET" });
    await receiver.up();
  });

  it("closes promptly despite keep-alive connections, and can be closed twice", async () => {
    await post("/h");

    await receiver.close();

    await expect(receiver.close()).resolves.toBeUndefined();
    await expect(receiver.up()).rejects.toThrow("up() after close()");
  });
});
