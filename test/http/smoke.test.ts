import { describe, expect, it } from "vitest";
import { createTestContext, tableCounts } from "../support/context.js";

describe("smoke", () => {
  it("registers a watch and reads it back", async () => {
    const t = createTestContext();
    const res = await t.call("POST", "/v1/watches", {
      body: { task_id: "task_1", callback_url: "https://example.com/hook" },
    });
    expect(res.status).toBe(201);
    expect(res.body.status).toBe("active");
    const again = await t.call("POST", "/v1/watches", {
      body: { task_id: "task_1", callback_url: "https://example.com/hook" },
    });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(res.body.id);
    const got = await t.call("GET", `/v1/watches/${res.body.id}`);
    expect(got.body).toEqual(res.body);
    expect(tableCounts(t.db).watches).toBe(1);
  });
});
