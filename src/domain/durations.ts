const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

// Integers only: "1.5s" is better written "1500ms", and one form means one way to read a config.
const DURATION = /^(\d+)(ms|s|m|h)$/;

/** `250ms`, `5s`, `5m`, `2h` → milliseconds. */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text.trim());
  const amount = match?.[1];
  const factor = UNIT_MS[match?.[2] ?? ""];
  if (amount === undefined || factor === undefined) {
    throw new Error(
      `invalid duration "${text}": expected a whole number followed by ms, s, m or h (e.g. 250ms, 5s, 5m, 2h)`,
    );
  }
  const ms = Number(amount) * factor;
  if (!Number.isSafeInteger(ms)) {
    throw new Error(`invalid duration "${text}": too large`);
  }
  return ms;
}

/** `0s,5s,5m,30m` → [0, 5000, 300000, 1800000]; spaces around entries are fine, empty entries are not. */
export function parseDurationList(text: string): number[] {
  if (text.trim() === "") {
    throw new Error("invalid duration list: expected at least one duration, e.g. 0s,5s,5m");
  }
  return text.split(",").map((entry, index) => {
    if (entry.trim() === "") {
      throw new Error(`invalid duration list "${text}": entry ${index + 1} is empty`);
    }
    return parseDuration(entry);
  });
}
