import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { expect, vi } from "vitest";
import type { DelivererOptions } from "../../src/delivery/deliverer.js";
import type { LookupAll } from "../../src/delivery/guard.js";
import { createTestContext, KEY_A, type TestContext } from "../support/context.js";
import { type DelivererHarness, delivererFor } from "../support/deliverer.js";
import { type FakeUpstream, type Lifecycle, startFakeUpstream } from "../support/fake-upstream.js";
import { type ReceivedRequest, type Receiver, startReceiver } from "../support/receiver.js";
import { type SchedulerHarness, schedulerFor } from "../support/scheduler.js";

/** Shared set-up of the delivery suites: app + fake upstream + receiver + both loops on one ManualClock. */

export interface World {
  t: TestContext;
  up: FakeUpstream;
  rx: Receiver;
  s: SchedulerHarness;
  d: DelivererHarness;
  /** Extra deliverers started by a test (closed with the world). */
  more: DelivererHarness[];
}

export interface WorldOptions {
  env?: Record<string, string>;
  deliverer?: Partial<DelivererOptions> & { lookup?: LookupAll; allowPrivate?: boolean };
  random?: () => number;
}

const worlds: World[] = [];

export async function startWorld(opts: WorldOptions = {}): Promise<World> {
  const t = createTestContext({ ALLOW_PRIVATE_CALLBACKS: "true", ...opts.env });
  const up = await startFakeUpstream({ clock: t.clock });
  const rx = await startReceiver({ clock: t.clock });
  const s = schedulerFor(t, up.url);
  const d = delivererFor(t, opts.deliverer, opts.random);
  const world = { t, up, rx, s, d, more: [] };
  worlds.push(world);
  return world;
}

/** For afterEach: closes every world (receiver first, so a hanging answer cannot hold a deliverer). */
export async function closeWorlds(): Promise<void> {
  for (const w of worlds.splice(0)) {
    await w.rx.close();
    await w.s.close();
    for (const d of [w.d, ...w.more]) await d.close();
    await w.t.deps.sender.close();
    await w.up.close();
    w.t.db.$client.close();
  }
}

export async function watchTask(
  w: World,
  taskId: string,
  path: string,
  opts: { lifecycle?: Lifecycle; key?: string; body?: Record<string, unknown> } = {},
): Promise<{ id: string; callback_url: string }> {
  const key = opts.key ?? KEY_A;
  if (opts.lifecycle) w.up.addTask({ taskId, apiKey: key, lifecycle: opts.lifecycle });
  const res = await w.t.call("POST", "/v1/watches", {
    key,
    body: { task_id: taskId, callback_url: callbackUrl(w, path), ...opts.body },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

/** A path on the world's receiver, or a whole URL. */
function callbackUrl(w: World, pathOrUrl: string): string {
  return /^https?:/.test(pathOrUrl) ? pathOrUrl : `${w.rx.url}${pathOrUrl}`;
}

export interface DeliveryRow {
  id: string;
  event_id: string;
  watch_id: string;
  status: string;
  attempts: number;
  next_attempt_at: number;
  lease_until: number | null;
}

export interface AttemptRow {
  at: number;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_body: string | null;
}

export function deliveriesOf(t: TestContext, watchId: string): DeliveryRow[] {
  return t.db.$client
    .prepare("select * from deliveries where watch_id = ? order by id")
    .all(watchId) as DeliveryRow[];
}

export function onlyDelivery(t: TestContext, watchId: string): DeliveryRow {
  const rows = deliveriesOf(t, watchId);
  expect(rows).toHaveLength(1);
  const [row] = rows;
  if (!row) throw new Error("unreachable");
  return row;
}

export function attemptsOf(t: TestContext, deliveryId: string): AttemptRow[] {
  return t.db.$client
    .prepare("select * from delivery_attempts where delivery_id = ? order by id")
    .all(deliveryId) as AttemptRow[];
}

export function storedPayload(t: TestContext, eventId: string): string {
  const row = t.db.$client.prepare("select payload from events where id = ?").get(eventId) as
    | { payload: string }
    | undefined;
  if (!row) throw new Error(`no event ${eventId}`);
  return row.payload;
}

export async function secretOf(t: TestContext, key = KEY_A): Promise<string> {
  const res = await t.call("GET", "/v1/signing-secret", { key });
  expect(res.status).toBe(200);
  return res.body.secret;
}

/**
 * The verifiers compare `webhook-timestamp` with the real Date.now (5-minute tolerance), while the
 * attempts are stamped by the ManualClock: run `fn` with Date pinned to the attempt's time.
 */
export function atAttemptTime<T>(req: ReceivedRequest, fn: () => T): T {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(Number(req.headers["webhook-timestamp"]) * 1000);
  try {
    return fn();
  } finally {
    vi.useRealTimers();
  }
}

/** Verifies with both reference libraries; throws if either refuses. Returns the parsed body. */
export function verifyBoth(secret: string, req: ReceivedRequest): unknown {
  return atAttemptTime(req, () => {
    const standard = new StandardWebhook(secret).verify(req.body, { ...req.headers });
    const svix = new SvixWebhook(secret).verify(req.body, { ...req.headers });
    expect(svix).toEqual(standard);
    return standard;
  });
}

/** True when neither library accepts the request under `secret` (both must agree). */
export function refusedByBoth(secret: string, req: ReceivedRequest): boolean {
  return atAttemptTime(req, () => {
    const refuses = (verify: () => unknown) => {
      try {
        verify();
        return false;
      } catch {
        return true;
      }
    };
    const standard = refuses(() =>
      new StandardWebhook(secret).verify(req.body, { ...req.headers }),
    );
    const svix = refuses(() => new SvixWebhook(secret).verify(req.body, { ...req.headers }));
    expect(svix).toBe(standard);
    return standard;
  });
}

export function json(req: ReceivedRequest | undefined): any {
  if (!req) throw new Error("no such request");
  return req.json;
}
