import { createHmac } from "node:crypto";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { generateSigningSecret, signatureHeader, webhookHeaders } from "../../src/delivery/sign.js";

const NOW_MS = Date.parse("2026-01-04T12:00:00.000Z");
const NOW_SEC = NOW_MS / 1000;
const BODY = JSON.stringify({ type: "task.completed", data: { task_id: "task_abc", n: "é✓" } });
const EVENT_ID = "evt_01JGZ5Y6Q0000000000000000";

// Both verifiers check the timestamp against Date.now(), so pin it instead of racing the clock.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW_MS);
});
afterEach(() => {
  vi.useRealTimers();
});

const verifiers = [
  { name: "standardwebhooks", make: (secret: string) => new StandardWebhook(secret) },
  { name: "svix", make: (secret: string) => new SvixWebhook(secret) },
] as const;

function headersFor(secrets: readonly string[], body = BODY, timestampSec = NOW_SEC) {
  return webhookHeaders({ id: EVENT_ID, timestampSec, body, secrets, userAgent: "taskhook/0.1.0" });
}

describe("generateSigningSecret", () => {
  it("is whsec_ + base64 of 32 random bytes, different every time", () => {
    const a = generateSigningSecret();
    const b = generateSigningSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.slice("whsec_".length), "base64")).toHaveLength(32);
    expect(a).not.toBe(b);
  });
});

describe("signatureHeader", () => {
  it("reproduces the Standard Webhooks published test vector", () => {
    expect(
      signatureHeader({
        id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestampSec: 1614265330,
        body: '{"test": 2432232314}',
        secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
      }),
    ).toBe("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  });

  it("signs {id}.{timestamp}.{body} (UTF-8) with the base64-decoded secret, newest secret first", () => {
    const newer = `whsec_${Buffer.alloc(32, 1).toString("base64")}`;
    const older = `whsec_${Buffer.alloc(32, 2).toString("base64")}`;
    const expected = (fill: number) =>
      `v1,${createHmac("sha256", Buffer.alloc(32, fill))
        .update(Buffer.from(`${EVENT_ID}.${NOW_SEC}.${BODY}`, "utf8"))
        .digest("base64")}`;
    expect(
      signatureHeader({ id: EVENT_ID, timestampSec: NOW_SEC, body: BODY, secrets: [newer, older] }),
    ).toBe(`${expected(1)} ${expected(2)}`);
  });

  it("accepts a secret without the whsec_ prefix, as the reference libraries do", () => {
    const encoded = Buffer.alloc(32, 7).toString("base64");
    const input = { id: EVENT_ID, timestampSec: NOW_SEC, body: BODY };
    expect(signatureHeader({ ...input, secrets: [encoded] })).toBe(
      signatureHeader({ ...input, secrets: [`whsec_${encoded}`] }),
    );
  });

  it.each([
    { case: "no secrets", secrets: [], timestampSec: NOW_SEC, error: /at least one secret/ },
    {
      case: "a non-base64 secret",
      secrets: ["whsec_not base64!"],
      timestampSec: NOW_SEC,
      error: /base64/,
    },
    { case: "an empty secret", secrets: ["whsec_"], timestampSec: NOW_SEC, error: /base64/ },
    {
      case: "a fractional timestamp",
      secrets: [generateSigningSecret()],
      timestampSec: 1.5,
      error: /integer/,
    },
    {
      case: "a negative timestamp",
      secrets: [generateSigningSecret()],
      timestampSec: -1,
      error: /integer/,
    },
  ])("refuses $case", ({ secrets, timestampSec, error }) => {
    expect(() => signatureHeader({ id: EVENT_ID, timestampSec, body: BODY, secrets })).toThrow(
      error,
    );
  });
});

describe("webhookHeaders", () => {
  it("carries exactly the Standard Webhooks headers, content type and user agent", () => {
    const secret = generateSigningSecret();
    expect(headersFor([secret])).toEqual({
      "webhook-id": EVENT_ID,
      "webhook-timestamp": String(NOW_SEC),
      "webhook-signature": signatureHeader({
        id: EVENT_ID,
        timestampSec: NOW_SEC,
        body: BODY,
        secrets: [secret],
      }),
      "content-type": "application/json",
      "user-agent": "taskhook/0.1.0",
    });
  });
});

describe.each(verifiers)("the published $name verifier", ({ make }) => {
  it("accepts our webhook and returns the parsed body", () => {
    const secret = generateSigningSecret();
    expect(make(secret).verify(BODY, headersFor([secret]))).toEqual(JSON.parse(BODY));
  });

  it("during a rotation, accepts the new secret and the old one each on its own", () => {
    const newer = generateSigningSecret();
    const older = generateSigningSecret();
    const headers = headersFor([newer, older]);
    expect(headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(make(newer).verify(BODY, headers)).toEqual(JSON.parse(BODY));
    expect(make(older).verify(BODY, headers)).toEqual(JSON.parse(BODY));
    expect(() => make(generateSigningSecret()).verify(BODY, headers)).toThrow(/signature/i);
  });

  it("rejects a tampered body", () => {
    const secret = generateSigningSecret();
    const headers = headersFor([secret]);
    expect(() => make(secret).verify(BODY.replace("task_abc", "task_abd"), headers)).toThrow(
      /signature/i,
    );
  });

  it("rejects a changed webhook-id", () => {
    const secret = generateSigningSecret();
    const headers = { ...headersFor([secret]), "webhook-id": "evt_other" };
    expect(() => make(secret).verify(BODY, headers)).toThrow(/signature/i);
  });

  it("rejects a wrong secret", () => {
    const headers = headersFor([generateSigningSecret()]);
    expect(() => make(generateSigningSecret()).verify(BODY, headers)).toThrow(/signature/i);
  });

  it("rejects a signature made more than five minutes ago, so each retry must be signed afresh", () => {
    const secret = generateSigningSecret();
    const headers = headersFor([secret], BODY, NOW_SEC - 10 * 60);
    expect(() => make(secret).verify(BODY, headers)).toThrow(/too old/);
  });
});

describe("svix with its own header names", () => {
  it("verifies the same signature under svix-id / svix-timestamp / svix-signature", () => {
    const secret = generateSigningSecret();
    const headers = headersFor([secret]);
    const svixHeaders = {
      "svix-id": headers["webhook-id"] ?? "",
      "svix-timestamp": headers["webhook-timestamp"] ?? "",
      "svix-signature": headers["webhook-signature"] ?? "",
    };
    expect(new SvixWebhook(secret).verify(BODY, svixHeaders)).toEqual(JSON.parse(BODY));
  });
});
