import type { LookupAddress, LookupAllOptions, LookupOptions } from "node:dns";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from "node:net";
import { Agent, type buildConnector, fetch, request } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AddressBlockedError,
  createGuardedConnector,
  createGuardedLookup,
  guardConnector,
  type LookupAll,
} from "../../src/delivery/guard.js";

/** A resolver that answers each call with the next entry (the last one repeats). */
function scriptedLookup(...answers: LookupAddress[][]): LookupAll & { calls: LookupAllOptions[] } {
  const calls: LookupAllOptions[] = [];
  const fn = (
    _hostname: string,
    options: LookupAllOptions,
    callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
  ) => {
    const answer = answers[Math.min(calls.length, answers.length - 1)] ?? [];
    calls.push(options);
    setImmediate(() => callback(null, answer));
  };
  return Object.assign(fn, { calls });
}

const v4 = (address: string): LookupAddress => ({ address, family: 4 });
const v6 = (address: string): LookupAddress => ({ address, family: 6 });

type LookupResult = { err: NodeJS.ErrnoException | null; address: unknown; family?: number };

function runLookup(
  lookup: ReturnType<typeof createGuardedLookup>,
  hostname: string,
  options: LookupOptions,
): Promise<LookupResult> {
  return new Promise((resolve) => {
    lookup(hostname, options, (err, address, family) => resolve({ err, address, family }));
  });
}

describe("createGuardedLookup", () => {
  it.each<[string, LookupAddress[], string]>([
    ["a loopback address", [v4("127.0.0.1")], "127.0.0.1 (loopback)"],
    ["the cloud metadata address", [v4("169.254.169.254")], "169.254.169.254 (link-local)"],
    ["a private address", [v4("10.0.0.5")], "10.0.0.5 (private)"],
    ["the IPv6 loopback address", [v6("::1")], "::1 (loopback)"],
    ["an IPv4-mapped loopback address", [v6("::ffff:127.0.0.1")], "::ffff:127.0.0.1 (loopback)"],
    ["a unique-local address", [v6("fd00::1")], "fd00::1 (unique-local)"],
    [
      "one private address among public ones",
      [v4("8.8.8.8"), v4("192.168.0.10")],
      "192.168.0.10 (private)",
    ],
  ])("refuses a name that resolves to %s", async (_label, answer, shown) => {
    const lookup = createGuardedLookup({ allowPrivate: false, lookup: scriptedLookup(answer) });
    for (const all of [false, true]) {
      const { err, address } = await runLookup(lookup, "example.test", { all });
      expect(err).toBeInstanceOf(AddressBlockedError);
      expect(err?.code).toBe("EADDRBLOCKED");
      expect(err?.message).toBe(`callback host example.test resolved to ${shown}: refused`);
      expect(address).toBe("");
    }
  });

  it("hands back the first address, or all of them when Node asks for all", async () => {
    const answer = [v6("2606:4700::1111"), v4("8.8.8.8")];
    const lookup = createGuardedLookup({ allowPrivate: false, lookup: scriptedLookup(answer) });
    expect(await runLookup(lookup, "example.test", {})).toEqual({
      err: null,
      address: "2606:4700::1111",
      family: 6,
    });
    expect(await runLookup(lookup, "example.test", { all: true })).toEqual({
      err: null,
      address: answer,
      family: undefined,
    });
  });

  it("passes the caller's options through and always resolves every address", async () => {
    const resolver = scriptedLookup([v4("8.8.8.8")]);
    const lookup = createGuardedLookup({ allowPrivate: false, lookup: resolver });
    await runLookup(lookup, "example.test", { family: 4, hints: 32 });
    expect(resolver.calls).toEqual([{ family: 4, hints: 32, all: true }]);
  });

  it("judges every resolution again, so a name that rebinds to a private address is refused", async () => {
    const resolver = scriptedLookup([v4("93.184.215.14")], [v4("10.0.0.5")]);
    const lookup = createGuardedLookup({ allowPrivate: false, lookup: resolver });
    const first = await runLookup(lookup, "rebind.test", { all: true });
    expect(first.err).toBeNull();
    expect(first.address).toEqual([v4("93.184.215.14")]);
    const second = await runLookup(lookup, "rebind.test", { all: true });
    expect(second.err?.code).toBe("EADDRBLOCKED");
    expect(second.err?.message).toBe(
      "callback host rebind.test resolved to 10.0.0.5 (private): refused",
    );
    expect(resolver.calls).toHaveLength(2);
  });

  it("lets private addresses through when allowPrivate is set", async () => {
    const lookup = createGuardedLookup({
      allowPrivate: true,
      lookup: scriptedLookup([v4("127.0.0.1")]),
    });
    expect(await runLookup(lookup, "example.test", {})).toEqual({
      err: null,
      address: "127.0.0.1",
      family: 4,
    });
  });

  it("passes resolver errors through untouched and treats an empty answer as not found", async () => {
    const failure: NodeJS.ErrnoException = Object.assign(new Error("boom"), { code: "EAI_AGAIN" });
    const failing: LookupAll = (_h, _o, callback) => callback(failure, []);
    const failed = await runLookup(
      createGuardedLookup({ allowPrivate: false, lookup: failing }),
      "x.test",
      {},
    );
    expect(failed.err).toBe(failure);
    const empty = await runLookup(
      createGuardedLookup({ allowPrivate: false, lookup: scriptedLookup([]) }),
      "x.test",
      {},
    );
    expect(empty.err?.code).toBe("ENOTFOUND");
  });

  it("uses dns.lookup by default: localhost is refused", async () => {
    const { err } = await runLookup(createGuardedLookup({ allowPrivate: false }), "localhost", {
      all: true,
    });
    expect(err?.code).toBe("EADDRBLOCKED");
    expect(err?.message).toMatch(/^callback host localhost resolved to \S+ \(loopback\): refused$/);
  });
});

describe("createGuardedConnector over real sockets", () => {
  let server: Server;
  let port: number;
  let received: string[];
  const agents: Agent[] = [];

  function agent(opts: Parameters<typeof createGuardedConnector>[0]): Agent {
    const a = new Agent({ connect: createGuardedConnector(opts) });
    agents.push(a);
    return a;
  }

  beforeEach(async () => {
    received = [];
    server = createServer((req, res) => {
      received.push(`${req.headers.host ?? ""} ${req.url ?? ""}`);
      res.end("ok");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.destroy()));
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it.each([
    ["an IPv4 literal", () => `http://127.0.0.1:${port}/hook`, "127.0.0.1 is a loopback address"],
    [
      "an IPv4-mapped IPv6 literal",
      () => `http://[::ffff:127.0.0.1]:${port}/hook`,
      "::ffff:7f00:1 is a loopback address",
    ],
    [
      "a name resolving to 127.0.0.1",
      () => `http://hooks.example.test:${port}/hook`,
      "hooks.example.test resolved to 127.0.0.1 (loopback)",
    ],
  ])(
    "request() to %s is refused with err.code EADDRBLOCKED before anything is sent",
    async (_label, url, shown) => {
      const dispatcher = agent({
        allowPrivate: false,
        lookup: scriptedLookup([v4("127.0.0.1")]),
      });
      const err = await request(url(), { dispatcher }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AddressBlockedError);
      expect((err as AddressBlockedError).code).toBe("EADDRBLOCKED");
      expect((err as AddressBlockedError).message).toBe(`callback host ${shown}: refused`);
      expect(received).toEqual([]);
    },
  );

  it("fetch() surfaces the refusal as err.cause.code", async () => {
    const dispatcher = agent({ allowPrivate: false, lookup: scriptedLookup([v4("127.0.0.1")]) });
    const err = await fetch(`http://hooks.example.test:${port}/hook`, { dispatcher }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TypeError);
    expect((err as TypeError).cause).toBeInstanceOf(AddressBlockedError);
    expect(((err as TypeError).cause as AddressBlockedError).code).toBe("EADDRBLOCKED");
    expect(received).toEqual([]);
  });

  it("with allowPrivate both the literal and the resolved name go through", async () => {
    const resolver = scriptedLookup([v4("127.0.0.1")]);
    const dispatcher = agent({ allowPrivate: true, lookup: resolver });
    const literal = await request(`http://127.0.0.1:${port}/a`, { dispatcher });
    expect(literal.statusCode).toBe(200);
    expect(await literal.body.text()).toBe("ok");
    const named = await request(`http://hooks.example.test:${port}/b`, { dispatcher });
    expect(named.statusCode).toBe(200);
    expect(await named.body.text()).toBe("ok");
    expect(received).toEqual([`127.0.0.1:${port} /a`, `hooks.example.test:${port} /b`]);
    expect(resolver.calls.length).toBeGreaterThanOrEqual(1);
  });

  it("each new connection resolves the name again, so a rebind is seen", async () => {
    const resolver = scriptedLookup([v4("127.0.0.1")]);
    const dispatcher = agent({ allowPrivate: true, lookup: resolver });
    for (const path of ["/1", "/2"]) {
      const res = await request(`http://hooks.example.test:${port}${path}`, {
        dispatcher,
        reset: true,
      });
      await res.body.text();
    }
    expect(received).toHaveLength(2);
    expect(resolver.calls).toHaveLength(2);
  });

  it("timeoutMs bounds the connect, TLS handshake included", async () => {
    const held: Socket[] = [];
    const silent = createNetServer((socket) => {
      held.push(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const { port: silentPort } = silent.address() as AddressInfo;
      const dispatcher = agent({ allowPrivate: true, timeoutMs: 150 });
      const started = performance.now();
      const err = await request(`https://127.0.0.1:${silentPort}/`, { dispatcher }).then(
        () => null,
        (e: unknown) => e,
      );
      expect((err as { code?: unknown }).code).toBe("UND_ERR_CONNECT_TIMEOUT");
      // undici's own default is 10 s; well under that shows ours was applied.
      expect(performance.now() - started).toBeLessThan(3_000);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe("guardConnector judges the peer actually connected to", () => {
  let server: Server;
  let port: number;
  let received: number;
  let sockets: Socket[];

  beforeEach(async () => {
    received = 0;
    sockets = [];
    server = createServer((_req, res) => {
      received += 1;
      res.end("ok");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterEach(async () => {
    for (const s of sockets) s.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  // Stands in for a resolver that said "public" while the socket landed on loopback.
  const landsOnLoopback: buildConnector.connector = (_options, callback) => {
    const socket = connect({ host: "127.0.0.1", port });
    sockets.push(socket);
    socket.once("connect", () => callback(null, socket));
    socket.once("error", (err) => callback(err, null));
  };

  it("a socket that reaches loopback is destroyed and refused, and nothing is sent", async () => {
    const dispatcher = new Agent({ connect: guardConnector(landsOnLoopback) });
    try {
      const err = await request("http://public.example.test/hook", { dispatcher }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AddressBlockedError);
      expect((err as AddressBlockedError).message).toBe(
        "callback host public.example.test connected to 127.0.0.1 (loopback): refused",
      );
      expect(sockets[0]?.destroyed).toBe(true);
      expect(received).toBe(0);
    } finally {
      await dispatcher.destroy();
    }
  });

  it("a literal public host is not refused up front (the peer check still runs)", async () => {
    const dispatcher = new Agent({ connect: guardConnector(landsOnLoopback) });
    try {
      const err = await request("http://8.8.8.8/hook", { dispatcher }).then(
        () => null,
        (e: unknown) => e,
      );
      expect((err as AddressBlockedError).message).toBe(
        "callback host 8.8.8.8 connected to 127.0.0.1 (loopback): refused",
      );
      expect(received).toBe(0);
    } finally {
      await dispatcher.destroy();
    }
  });
});
