import { afterEach, describe, expect, it } from "vitest";
import { VERSION } from "../../src/version.js";
import { completed, processing, queued } from "../support/fake-upstream.js";
import {
  closeWorlds,
  json,
  refusedByBoth,
  secretOf,
  startWorld,
  storedPayload,
  verifyBoth,
  watchTask,
} from "./helpers.js";

const HOUR = 3_600_000;

afterEach(closeWorlds);

describe("signatures of real deliveries", () => {
  it("verify with standardwebhooks and svix, with the Standard Webhooks headers, the stored body byte for byte", async () => {
    const w = await startWorld();
    const { t, s, d, rx } = w;
    const watch = await watchTask(w, "task_sig", "/hook", {
      lifecycle: [processing(t.clock.now()), completed({ note: "ünïcödé ✓" })],
      body: { metadata: { order_id: 42, label: "naïve" } },
    });
    await s.step();
    await d.step();
    await s.step(5000);
    await d.step();

    expect(rx.requests).toHaveLength(2);
    const secret = await secretOf(t);
    for (const req of rx.requests) {
      const body = json(req);
      expect(verifyBoth(secret, req)).toEqual(body);
      expect(req.method).toBe("POST");
      expect(req.path).toBe("/hook");
      expect(req.headers["webhook-id"]).toBe(body.data.event_id);
      expect(req.headers["webhook-id"]).toMatch(/^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(req.headers["webhook-timestamp"]).toBe(String(Math.floor(req.at / 1000)));
      expect(req.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
      expect(req.headers["content-type"]).toBe("application/json");
      expect(req.headers["user-agent"]).toBe(`taskhook/${VERSION}`);
      expect(req.body).toBe(storedPayload(t, body.data.event_id));
      expect(body.data.watch_id).toBe(watch.id);
      expect(body.data.metadata).toEqual({ order_id: 42, label: "naïve" });
    }
    expect(rx.requests.map((r) => json(r).data.sequence)).toEqual([1, 2]);

    const events = await t.call("GET", `/v1/watches/${watch.id}/events`);
    expect(events.body.data.map((e: any) => e.id)).toEqual(
      rx.requests.map((r) => r.headers["webhook-id"]),
    );
  });

  it("is refused by both libraries under another tenant's secret or a tampered body", async () => {
    const w = await startWorld();
    const { t, s, d, rx } = w;
    await watchTask(w, "task_sig", "/hook", { lifecycle: [processing(t.clock.now())] });
    await s.step();
    await d.step();
    const [req] = await rx.waitFor(1);
    if (!req) throw new Error("no request");

    expect(refusedByBoth(await secretOf(t, "vpk_test_someone_else_1"), req)).toBe(true);
    expect(refusedByBoth(await secretOf(t), { ...req, body: req.body.replace("}", " }") })).toBe(
      true,
    );
    expect(refusedByBoth(await secretOf(t), req)).toBe(false);
  });

  it("carries old and new signatures for 24 h after a rotation, then only the new one", async () => {
    const w = await startWorld();
    const { t, s, d, rx } = w;
    await watchTask(w, "task_rot", "/hook", {
      lifecycle: [queued(3, t.clock.now() + 10 * HOUR), processing(t.clock.now()), completed()],
      body: { expires_in: 7 * 24 * 3600 },
    });
    const before = await secretOf(t);
    await s.step();
    await d.step();

    const rotated = await t.call("POST", "/v1/signing-secret/rotate");
    expect(rotated.status).toBe(200);
    const after: string = rotated.body.secret;
    expect(after).not.toBe(before);
    await s.step(10 * HOUR);
    await d.step();

    // Just past the overlap: the old secret no longer signs.
    await s.step(24 * HOUR + 1);
    await d.step();

    const [first, during, later] = rx.requests;
    if (!first || !during || !later)
      throw new Error(`expected 3 requests, got ${rx.requests.length}`);
    expect([first, during, later].map((r) => json(r).type)).toEqual([
      "task.queued",
      "task.processing",
      "task.completed",
    ]);

    expect(first.headers["webhook-signature"]?.split(" ")).toHaveLength(1);
    expect(verifyBoth(before, first)).toEqual(json(first));
    expect(refusedByBoth(after, first)).toBe(true);

    const signatures = during.headers["webhook-signature"]?.split(" ") ?? [];
    expect(signatures).toHaveLength(2);
    for (const sig of signatures) expect(sig).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(verifyBoth(before, during)).toEqual(json(during));
    expect(verifyBoth(after, during)).toEqual(json(during));
    // Each signature on its own verifies with exactly one of the two secrets.
    for (const [i, secret] of [after, before].entries()) {
      const alone = {
        ...during,
        headers: { ...during.headers, "webhook-signature": signatures[i] ?? "" },
      };
      expect(verifyBoth(secret, alone)).toEqual(json(during));
      expect(refusedByBoth(i === 0 ? before : after, alone)).toBe(true);
    }

    expect(later.headers["webhook-signature"]?.split(" ")).toHaveLength(1);
    expect(verifyBoth(after, later)).toEqual(json(later));
    expect(refusedByBoth(before, later)).toBe(true);
  });

  it("signs a retry afresh: same webhook-id, the retry's own timestamp", async () => {
    const w = await startWorld({ env: { DELIVERY_RETRY_SCHEDULE: "0s,5s" } });
    const { t, s, d, rx } = w;
    await watchTask(w, "task_re", "/hook", { lifecycle: [processing(t.clock.now())] });
    rx.respondWith(500, 1);
    await s.step();
    await d.step();
    await d.step(5000);

    const [first, second] = rx.requests;
    if (!first || !second) throw new Error("expected two attempts");
    expect(second.headers["webhook-id"]).toBe(first.headers["webhook-id"]);
    expect(Number(second.headers["webhook-timestamp"])).toBe(
      Number(first.headers["webhook-timestamp"]) + 5,
    );
    expect(second.headers["webhook-signature"]).not.toBe(first.headers["webhook-signature"]);
    expect(second.body).toBe(first.body);
    const secret = await secretOf(t);
    verifyBoth(secret, first);
    verifyBoth(secret, second);
  });
});
