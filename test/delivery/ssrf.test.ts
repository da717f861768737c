import type { LookupAddress } from "node:dns";
import { afterEach, describe, expect, it } from "vitest";
import type { LookupAll } from "../../src/delivery/guard.js";
import { delivererFor } from "../support/deliverer.js";
import { processing } from "../support/fake-upstream.js";
import {
  attemptsOf,
  closeWorlds,
  onlyDelivery,
  startWorld,
  type World,
  watchTask,
} from "./helpers.js";

const HOST = "hooks.example.test";
const PRIVATE = { ALLOW_PRIVATE_CALLBACKS: "false", DELIVERY_RETRY_SCHEDULE: "0s,5s,10s" };

afterEach(closeWorlds);

type Answer = LookupAddress[] | NodeJS.ErrnoException;

/** A resolver that answers from a script (the last answer repeats) and records what it was asked. */
function scriptedLookup(...answers: Answer[]): LookupAll & { asked: string[] } {
  const asked: string[] = [];
  const lookup = (
    hostname: string,
    _options: unknown,
    callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
  ) => {
    asked.push(hostname);
    const answer = answers[Math.min(asked.length, answers.length) - 1] ?? [];
    setImmediate(() => (Array.isArray(answer) ? callback(null, answer) : callback(answer, [])));
  };
  return Object.assign(lookup, { asked });
}

const v4 = (address: string): LookupAddress => ({ address, family: 4 });
const v6 = (address: string): LookupAddress => ({ address, family: 6 });

function notFound(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${HOST}`);
  err.code = "ENOTFOUND";
  return err;
}

/** Registers a watch whose callback is a name (accepted: no address to judge yet), polls once. */
async function namedCallback(w: World) {
  const watch = await watchTask(w, "task_s", `http://${HOST}:${w.rx.port}/hook`, {
    lifecycle: [processing(w.t.clock.now())],
  });
  expect(watch.callback_url).toBe(`http://${HOST}:${w.rx.port}/hook`);
  await w.s.step();
  return watch;
}

describe("at delivery, with private callbacks not allowed", () => {
  it.each([
    { name: "loopback", answer: [v4("127.0.0.1")] },
    { name: "cloud metadata", answer: [v4("169.254.169.254")] },
    { name: "a private network", answer: [v4("10.0.0.5")] },
    { name: "IPv4-mapped loopback", answer: [v6("::ffff:127.0.0.1")] },
    { name: "IPv6 loopback", answer: [v6("::1")] },
    { name: "a public and a loopback address", answer: [v4("93.184.216.34"), v4("127.0.0.1")] },
  ])("a name that resolves to $name fails the attempt, and nothing is sent", async ({ answer }) => {
    const lookup = scriptedLookup(answer);
    const w = await startWorld({ env: PRIVATE, deliverer: { lookup, allowPrivate: false } });
    const { t, d, rx } = w;
    const watch = await namedCallback(w);

    await d.step();

    expect(lookup.asked).toEqual([HOST]);
    expect(rx.requests).toEqual([]);
    const delivery = onlyDelivery(t, watch.id);
    expect(delivery).toMatchObject({ status: "pending", attempts: 1 });
    const [attempt] = attemptsOf(t, delivery.id);
    expect(attempt?.status_code).toBeNull();
    expect(attempt?.error).toMatch(/^EADDRBLOCKED: callback host hooks\.example\.test .*refused$/);
  });

  it("resolves again at every attempt: each answer is judged afresh, none reaches the receiver", async () => {
    const lookup = scriptedLookup(notFound(), [v4("10.0.0.5")], [v4("127.0.0.1")]);
    const w = await startWorld({ env: PRIVATE, deliverer: { lookup, allowPrivate: false } });
    const { t, d, rx } = w;
    const watch = await namedCallback(w);

    await d.step();
    await d.step(5_000);
    await d.step(10_000);

    expect(lookup.asked).toEqual([HOST, HOST, HOST]);
    expect(rx.requests).toEqual([]);
    const delivery = onlyDelivery(t, watch.id);
    expect(delivery).toMatchObject({ status: "failed", attempts: 3 });
    const errors = attemptsOf(t, delivery.id).map((a) => a.error ?? "");
    expect(errors[0]).toMatch(/^ENOTFOUND/);
    expect(errors[1]).toMatch(/^EADDRBLOCKED: .*10\.0\.0\.5 \(private\): refused$/);
    expect(errors[2]).toMatch(/^EADDRBLOCKED: .*127\.0\.0\.1 \(loopback\): refused$/);
  });

  it("a literal private address registered while allowed is refused at delivery once it is not", async () => {
    const w = await startWorld({ env: { DELIVERY_RETRY_SCHEDULE: "0s,5s" } });
    const { t, d, rx } = w;
    const watch = await watchTask(w, "task_s", "/hook", {
      lifecycle: [processing(t.clock.now())],
    });
    await w.s.step();
    const strict = delivererFor(t, { allowPrivate: false });
    w.more.push(strict);

    await strict.step();

    expect(rx.requests).toEqual([]);
    expect(attemptsOf(t, onlyDelivery(t, watch.id).id)[0]?.error).toMatch(
      /^EADDRBLOCKED: callback host 127\.0\.0\.1 is a loopback address: refused$/,
    );
    await d.step(5_000);
    expect(rx.requests).toHaveLength(1);
  });
});

/*
 * DNS rebinding: the name resolved to an address that was allowed, then re-resolves to a private one.
 * A public address cannot be reached from the tests, so the first attempt is made by a deliverer that
 * allows private addresses (loopback stands in for "a public address": the receiver answers it); the
 * retry is made by a strict deliverer whose resolver now answers 10.0.0.5. What is asserted is what
 * the SPEC requires of the later attempt: resolved again, refused, recorded, nothing sent.
 */
it("a name that re-resolves to a private address is refused on the later attempt", async () => {
  const w = await startWorld({ env: PRIVATE, deliverer: { allowPrivate: false } });
  const { t, rx } = w;
  const before = scriptedLookup([v4("127.0.0.1")]);
  const first = delivererFor(t, { lookup: before, allowPrivate: true });
  const rebound = scriptedLookup([v4("10.0.0.5")]);
  const later = delivererFor(t, { lookup: rebound, allowPrivate: false });
  w.more.push(first, later);
  const watch = await namedCallback(w);
  rx.respondWith(503, 1);

  await first.step();
  expect(rx.requests).toHaveLength(1);
  expect(rx.requests[0]?.headers.host).toBe(`${HOST}:${rx.port}`);
  await later.step(5_000);

  expect(before.asked).toEqual([HOST]);
  expect(rebound.asked).toEqual([HOST]);
  expect(rx.requests).toHaveLength(1);
  const delivery = onlyDelivery(t, watch.id);
  expect(delivery).toMatchObject({ status: "pending", attempts: 2 });
  expect(attemptsOf(t, delivery.id).map((a) => [a.status_code, a.error])).toEqual([
    [503, "HTTP 503"],
    [null, `EADDRBLOCKED: callback host ${HOST} resolved to 10.0.0.5 (private): refused`],
  ]);
});
