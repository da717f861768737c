import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Deadline, sharedDeadlines } from "../src/deadline.js";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("Deadline", () => {
  it("aborts every listener once, when its time is up, with a TimeoutError", () => {
    const deadline = new Deadline(1000);
    const heard: string[] = [];
    deadline.once("abort", () => heard.push("a"));
    const b = () => heard.push("b");
    deadline.once("abort", b);
    deadline.removeListener("abort", b);
    vi.advanceTimersByTime(999);
    expect(deadline.aborted).toBe(false);
    expect(heard).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(deadline.aborted).toBe(true);
    expect(deadline.reason?.name).toBe("TimeoutError");
    expect(heard).toEqual(["a"]);
  });

  it("is shared by the requests of one millisecond; a later request gets its own", () => {
    const deadline = sharedDeadlines(1000);
    const first = deadline();
    expect(deadline()).toBe(first);
    vi.advanceTimersByTime(1);
    const second = deadline();
    expect(second).not.toBe(first);
    vi.advanceTimersByTime(999);
    expect(first.aborted).toBe(true);
    expect(second.aborted).toBe(false);
  });
});
