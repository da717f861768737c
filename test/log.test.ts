import { describe, expect, it } from "vitest";
import { createTestContext, KEY_A, memoryLogger } from "./support/context.js";

describe("logs", () => {
  it("redact a credential that slips into a logged object, at the top or one level down", () => {
    const { logger, lines } = memoryLogger("info");
    logger.info(
      {
        apiKey: "vpk_top_secret",
        request: { authorization: "Bearer vpk_nested", apiKey: "vpk_nested_key" },
        secret: "whsec_c2VjcmV0",
      },
      "oops",
    );
    const line = JSON.parse(lines[0] ?? "{}");
    expect(line.apiKey).toBe("[redacted]");
    expect(line.request).toEqual({ authorization: "[redacted]", apiKey: "[redacted]" });
    expect(line.secret).toBe("[redacted]");
    expect(lines.join("")).not.toMatch(/vpk_|whsec_/);
  });

  it("give every request one access line: id, method, path, status and time, no credential", async () => {
    const t = createTestContext();
    const res = await t.call("GET", "/v1/watches?limit=5", {
      headers: { "x-request-id": "req-1" },
    });
    expect(res.status).toBe(200);
    const access = t.logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === "request");
    expect(access).toEqual([
      {
        level: 30,
        time: expect.any(String),
        service: "taskhook",
        requestId: "req-1",
        method: "GET",
        path: "/v1/watches",
        status: 200,
        ms: expect.any(Number),
        msg: "request",
      },
    ]);
    expect(t.logLines.join("")).not.toContain(KEY_A);
    // The app's own logger still redacts: only the access line skips the pass.
    t.deps.logger.warn({ apiKey: KEY_A }, "after the app was built");
    expect(t.logLines.join("")).not.toContain(KEY_A);
  });
});
