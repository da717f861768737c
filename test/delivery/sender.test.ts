import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSender, type Sender, utf8Prefix } from "../../src/delivery/sender.js";
import { generateSigningSecret } from "../../src/delivery/sign.js";

/** Answers the receiver helper cannot give: a body that stalls or breaks off after the status. */

/** Long enough for the status line to arrive on a loaded machine before the time-out ends it. */
const HASTY_MS = 1000;

let server: Server;
let url: string;
/** For every test whose answer must arrive, however loaded the machine. */
let sender: Sender;
/** For the tests of the time-out itself. */
let hasty: Sender;
let answer: (res: ServerResponse) => void;

beforeEach(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => answer(res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  sender = createSender({ timeoutMs: 5000, allowPrivate: true });
  hasty = createSender({ timeoutMs: HASTY_MS, allowPrivate: true });
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await sender.destroy();
  await hasty.destroy();
});

const message = () => ({
  url,
  id: "evt_01JGZ3V5S8W9K2M4N6P8Q0R2T4",
  body: '{"type":"ping"}',
  secrets: [generateSigningSecret()],
});

describe("the status is the answer, whatever the body does after it", () => {
  it("a 2xx whose body stalls past the time-out is a success, with what arrived as the excerpt", async () => {
    answer = (res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
    };
    const attempt = await hasty.send(message(), 0);
    expect(attempt).toMatchObject({ statusCode: 200, error: null, responseBody: "partial" });
    expect(attempt.durationMs).toBeGreaterThanOrEqual(HASTY_MS - 50);
  });

  it("a body cut off by a reset keeps the status: a 500 is still a failure", async () => {
    answer = (res) => {
      res.writeHead(500, { "content-length": "100" });
      res.write("oops", () => res.socket?.destroy());
    };
    const attempt = await sender.send(message(), 0);
    expect(attempt).toMatchObject({ statusCode: 500, error: "HTTP 500", responseBody: "oops" });
  });
});

describe("the time-out (DELIVERY_TIMEOUT_MS)", () => {
  const stall = () => {};

  it("ends every attempt of a batch started together, each after the full time-out", async () => {
    answer = stall;
    const attempts = await Promise.all([hasty.send(message(), 0), hasty.send(message(), 0)]);
    for (const attempt of attempts) {
      expect(attempt).toMatchObject({ statusCode: null, error: expect.stringMatching(/^timeout/) });
      expect(attempt.durationMs).toBeGreaterThanOrEqual(HASTY_MS - 50);
    }
  });

  it("gives an attempt started later a deadline of its own, not the earlier batch's", async () => {
    answer = stall;
    const first = hasty.send(message(), 0);
    // Half the time-out later: on the earlier batch's deadline, the second would end after ~half.
    await new Promise((resolve) => setTimeout(resolve, HASTY_MS / 2));
    const second = await hasty.send(message(), HASTY_MS / 2);
    expect((await first).error).toMatch(/^timeout/);
    expect(second.error).toMatch(/^timeout/);
    expect(second.durationMs).toBeGreaterThanOrEqual(HASTY_MS - 50);
  });
});

describe("utf8Prefix", () => {
  it.each([
    { text: "x".repeat(10), max: 4, expected: "xxxx" },
    { text: "ab€", max: 4, expected: "ab" },
    { text: "ab€", max: 5, expected: "ab€" },
    { text: "a😀b", max: 4, expected: "a" },
    { text: "a😀b", max: 5, expected: "a😀" },
    { text: "éé", max: 3, expected: "é" },
  ])("keeps whole characters of $text within $max bytes", ({ text, max, expected }) => {
    const out = utf8Prefix(Buffer.from(text), max);
    expect(out).toBe(expected);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(max);
  });

  it.each([
    { bytes: [0x61, 0x62, 0xe2, 0x82], expected: "ab" },
    { bytes: [0x61, 0xf0, 0x9f, 0x98], expected: "a" },
    { bytes: [0x61, 0xc3], expected: "a" },
    { bytes: [0x61, 0xc3, 0xa9], expected: "aé" },
  ])("drops an incomplete last character of a shorter body ($expected)", ({ bytes, expected }) => {
    expect(utf8Prefix(Buffer.from(bytes), 1024)).toBe(expected);
  });
});

describe("the response excerpt", () => {
  it("is complete at 1 KiB: an attempt does not wait for the rest of a longer body", async () => {
    answer = (res) => {
      res.writeHead(200, { "content-length": "5000" });
      res.write("z".repeat(1024));
    };
    const attempt = await sender.send(message(), 0);
    expect(attempt).toMatchObject({ statusCode: 200, responseBody: "z".repeat(1024) });
    expect(attempt.durationMs).toBeLessThan(4000);
  });

  it("leaves out a character the body broke off inside, before the limit", async () => {
    answer = (res) => {
      res.writeHead(500, { "content-length": "100" });
      res.write(Buffer.from("bad €").subarray(0, 6), () => res.socket?.destroy());
    };
    const attempt = await sender.send(message(), 0);
    expect(attempt).toMatchObject({ statusCode: 500, responseBody: "bad " });
  });

  it("never ends on a split character, however the body's chunks fall", async () => {
    // The first chunk ends exactly at the excerpt's limit, inside the euro sign (bytes 1022–1024).
    const body = Buffer.from(`${"x".repeat(1022)}€${"y".repeat(100)}`);
    answer = (res) => {
      res.writeHead(200, { "content-length": String(body.length) });
      res.write(body.subarray(0, 1024), () => setTimeout(() => res.end(body.subarray(1024)), 50));
    };
    const attempt = await sender.send(message(), 0);
    expect(attempt.responseBody).toBe("x".repeat(1022));
  });
});
