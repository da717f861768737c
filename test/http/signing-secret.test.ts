import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { tenants } from "../../src/db/schema.js";
import { signingSecrets } from "../../src/db/tenants.js";
import { decryptSecret } from "../../src/domain/crypto.js";
import { createTestContext, KEY_A, type TestContext, tableCounts } from "../support/context.js";
import { tenantId } from "./fixtures.js";

const SECRET = /^whsec_[A-Za-z0-9+/]{43}=$/;
const DAY = 86_400_000;

const tenantRow = (t: TestContext) =>
  t.db
    .select()
    .from(tenants)
    .where(eq(tenants.id, tenantId(KEY_A)))
    .get();
const stored = (t: TestContext) =>
  signingSecrets(t.db, t.deps.encryptionKey, tenantId(KEY_A), t.clock.now());

describe("GET /v1/signing-secret", () => {
  it("creates the secret on first use: whsec_ + base64 of 32 bytes, stamped with the clock", async () => {
    const t = createTestContext();
    t.clock.advance(500);
    const res = await t.call("GET", "/v1/signing-secret");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      secret: expect.stringMatching(SECRET),
      created_at: "2026-01-04T12:00:00.500Z",
    });
    expect(Buffer.from(res.body.secret.slice(6), "base64")).toHaveLength(32);
  });

  it("answers the same secret every time", async () => {
    const t = createTestContext();
    const first = await t.call("GET", "/v1/signing-secret");
    t.clock.advance(DAY);
    const second = await t.call("GET", "/v1/signing-secret");
    expect(second.body).toEqual(first.body);
    expect(tableCounts(t.db).tenants).toBe(1);
  });

  it("stores it only encrypted, and creates a tenant without keeping the API key", async () => {
    const t = createTestContext();
    const res = await t.call("GET", "/v1/signing-secret");
    const row = tenantRow(t);
    expect(row?.apiKeyEnc).toBeNull();
    expect(row?.signingSecretEnc).not.toContain(res.body.secret.slice(6));
    expect(decryptSecret(t.deps.encryptionKey, row?.signingSecretEnc ?? "")).toBe(res.body.secret);
  });

  it("is the secret the webhooks of the tenant's watches will be signed with", async () => {
    const t = createTestContext();
    await t.call("POST", "/v1/watches", {
      body: { task_id: "t1", callback_url: "https://hooks.example.com/" },
    });
    const res = await t.call("GET", "/v1/signing-secret");
    expect(stored(t)).toEqual({
      current: res.body.secret,
      createdAt: t.clock.now(),
      previous: null,
    });
    expect(tenantRow(t)?.apiKeyEnc).not.toBeNull();
  });
});

describe("POST /v1/signing-secret/rotate", () => {
  it("answers a new secret that GET then returns, the old one signing beside it for 24 h", async () => {
    const t = createTestContext();
    const old = await t.call("GET", "/v1/signing-secret");
    t.clock.advance(60_000);
    const rotated = await t.call("POST", "/v1/signing-secret/rotate");
    expect(rotated.status).toBe(200);
    expect(rotated.body).toEqual({
      secret: expect.stringMatching(SECRET),
      created_at: "2026-01-04T12:01:00.000Z",
    });
    expect(rotated.body.secret).not.toBe(old.body.secret);
    expect((await t.call("GET", "/v1/signing-secret")).body).toEqual(rotated.body);

    expect(stored(t)).toEqual({
      current: rotated.body.secret,
      createdAt: t.clock.now(),
      previous: old.body.secret,
    });
    t.clock.advance(DAY - 1);
    expect(stored(t).previous).toBe(old.body.secret);
    t.clock.advance(1);
    expect(stored(t).previous).toBeNull();
  });

  it("works before any GET: the first secret is created, then replaced", async () => {
    const t = createTestContext();
    const rotated = await t.call("POST", "/v1/signing-secret/rotate");
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(SECRET);
    const s = stored(t);
    expect(s.current).toBe(rotated.body.secret);
    expect(s.previous).toMatch(SECRET);
    expect(s.previous).not.toBe(s.current);
  });

  it("a second rotation keeps only the secret just replaced as the previous one", async () => {
    const t = createTestContext();
    await t.call("GET", "/v1/signing-secret");
    const r1 = await t.call("POST", "/v1/signing-secret/rotate");
    t.clock.advance(1000);
    const r2 = await t.call("POST", "/v1/signing-secret/rotate");
    expect(stored(t)).toMatchObject({ current: r2.body.secret, previous: r1.body.secret });
    const row = tenantRow(t);
    expect(row?.previousSecretExpiresAt).toBe(t.clock.now() + DAY);
    expect(row?.previousSecretEnc).not.toContain(r1.body.secret.slice(6));
  });

  it("ignores a body (none is expected) rather than failing", async () => {
    const t = createTestContext();
    const res = await t.call("POST", "/v1/signing-secret/rotate", { body: {} });
    expect(res.status).toBe(200);
  });
});
