/** Small statistics for noisy, repeated measurements: nearest-rank quantiles, median and spread. */

/** Nearest-rank quantile of the values (sorted here, the input is left as it is). */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  if (sorted.length % 2 === 1) return sorted[mid] ?? Number.NaN;
  return ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export function spread(values: readonly number[]): Spread {
  return {
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    samples: values.map((v) => round(v, 4)),
  };
}

export function round(value: number, digits = 3): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Mulberry32, the fake upstream's seeded PRNG: simulated workloads are the same on every run. */
export { busiestWindow, mulberry32 } from "../../test/support/fake-upstream.js";
