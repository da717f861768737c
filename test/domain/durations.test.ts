import { describe, expect, it } from "vitest";
import { parseDuration, parseDurationList } from "../../src/domain/durations.js";

describe("parseDuration", () => {
  it.each([
    { text: "250ms", ms: 250 },
    { text: "0s", ms: 0 },
    { text: "0ms", ms: 0 },
    { text: "5s", ms: 5_000 },
    { text: "5m", ms: 300_000 },
    { text: "2h", ms: 7_200_000 },
    { text: "24h", ms: 86_400_000 },
    { text: "1500ms", ms: 1_500 },
    { text: " 30m ", ms: 1_800_000 },
  ])("reads '$text' as $ms ms", ({ text, ms }) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    { case: "a fraction", text: "1.5s" },
    { case: "a bare number", text: "5" },
    { case: "an unknown unit", text: "1d" },
    { case: "an upper-case unit", text: "5S" },
    { case: "a negative amount", text: "-5s" },
    { case: "a space inside", text: "5 s" },
    { case: "two units", text: "1h30m" },
    { case: "an empty string", text: "" },
    { case: "a word", text: "soon" },
  ])("refuses $case ('$text'), naming the value and the accepted form", ({ text }) => {
    expect(() => parseDuration(text)).toThrow(
      `invalid duration "${text}": expected a whole number followed by ms, s, m or h`,
    );
  });

  it("refuses an amount too large to count in milliseconds exactly", () => {
    expect(() => parseDuration("9999999999999999h")).toThrow(/too large/);
  });
});

describe("parseDurationList", () => {
  it("reads the Standard Webhooks retry schedule", () => {
    expect(parseDurationList("0s,5s,5m,30m,2h,5h,10h,14h,20h,24h")).toEqual([
      0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 50_400_000, 72_000_000,
      86_400_000,
    ]);
  });

  it.each([
    { text: "0s, 5s , 250ms", ms: [0, 5_000, 250] },
    { text: "1h", ms: [3_600_000] },
    { text: "  10s  ", ms: [10_000] },
  ])("tolerates spaces: '$text'", ({ text, ms }) => {
    expect(parseDurationList(text)).toEqual(ms);
  });

  it.each([
    { case: "an empty list", text: "", error: /at least one duration/ },
    { case: "a blank list", text: "   ", error: /at least one duration/ },
    { case: "an empty entry", text: "0s,,5s", error: /entry 2 is empty/ },
    { case: "a trailing comma", text: "0s,5s,", error: /entry 3 is empty/ },
    { case: "a bad entry", text: "0s,5x", error: /invalid duration "5x"/ },
  ])("refuses $case", ({ text, error }) => {
    expect(() => parseDurationList(text)).toThrow(error);
  });
});
