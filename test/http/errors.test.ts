import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/http/errors.js";

describe("ApiError", () => {
  it("is an answer to the client: its status, its body, and no stack trace", () => {
    const err = new ApiError("WATCH_EXISTS", "exists", [{ watch_id: "wch_1" }]);
    expect(err).toBeInstanceOf(Error);
    expect(err.status).toBe(409);
    expect(err.toBody()).toEqual({
      error: { code: "WATCH_EXISTS", message: "exists", details: [{ watch_id: "wch_1" }] },
    });
    expect(new ApiError("NOT_FOUND", "gone").toBody()).toEqual({
      error: { code: "NOT_FOUND", message: "gone" },
    });
    expect(err.stack ?? "").not.toMatch(/\n\s+at /);
  });

  it("leaves other errors their stack traces", () => {
    const limit = Error.stackTraceLimit;
    new ApiError("INTERNAL", "x");
    expect(Error.stackTraceLimit).toBe(limit);
    expect(new Error("fault").stack).toMatch(/\n\s+at /);
  });
});
