import { Agent } from "undici";
import { z } from "zod";
import { parseRetryAfter } from "../domain/backoff.js";
import { exchange, isTimeout } from "../outbound.js";

/** A task's answer is a few hundred bytes; a longer one is a fault, not something to buffer. */
export const MAX_ANSWER_BYTES = 1024 * 1024;

/** The upstream answer we rely on; everything else in it is kept verbatim and passed through. */
const TaskAnswerSchema = z.looseObject({
  task_id: z.string(),
  status: z.enum(["queued", "processing", "completed", "failed"]),
  created_at: z.string().optional(),
  queue_position: z.number().int().nullable().optional(),
  estimated_completion: z.string().nullable().optional(),
});

export type TaskAnswer = z.output<typeof TaskAnswerSchema>;

/** How a poll ended, one variant per way the scheduler must react (SPEC §4). */
export type PollResult =
  | { kind: "ok"; task: TaskAnswer }
  | { kind: "rejected"; code: "TASK_NOT_FOUND" | "INVALID_API_KEY" }
  | { kind: "rate_limited"; retryAfterMs: number | null }
  | { kind: "fault"; outcome: "5xx" | "timeout" | "network" | "bad_response"; message: string };

/** The metric label for a result (upstream requests by outcome). */
export function outcomeOf(result: PollResult): string {
  switch (result.kind) {
    case "ok":
      return "2xx";
    case "rejected":
      return result.code === "TASK_NOT_FOUND" ? "404" : "401";
    case "rate_limited":
      return "429";
    case "fault":
      return result.outcome;
  }
}

export interface UpstreamClient {
  getTask(taskId: string, apiKey: string, now: number): Promise<PollResult>;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export interface UpstreamClientOptions {
  baseUrl: string;
  timeoutMs: number;
  /** Sockets kept to the upstream (keep-alive); the scheduler bounds requests in flight itself. */
  connections: number;
}

/** undici with keep-alive; every failure becomes a PollResult, never a throw. */
export function createUpstreamClient(opts: UpstreamClientOptions): UpstreamClient {
  const agent = new Agent({
    connections: opts.connections,
    keepAliveTimeout: 30_000,
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
    connect: { timeout: opts.timeoutMs },
  });
  const base = new URL(opts.baseUrl);
  const origin = base.origin;
  const prefix = base.pathname.replace(/\/+$/, "");

  async function getTask(taskId: string, apiKey: string, now: number): Promise<PollResult> {
    try {
      const res = await exchange(agent, {
        origin,
        path: `${prefix}/v1/tasks/${encodeURIComponent(taskId)}`,
        method: "GET",
        headers: { authorization: `Bearer ${apiKey}`, accept: "application/json" },
        timeoutMs: opts.timeoutMs,
        // One byte more than allowed: an answer of exactly the limit is read whole.
        maxBodyBytes: MAX_ANSWER_BYTES + 1,
      });
      if (res.incomplete === "cut" && res.statusCode === 200) {
        return {
          kind: "fault",
          outcome: "bad_response",
          message: `the answer is longer than ${MAX_ANSWER_BYTES} bytes`,
        };
      }
      if (res.incomplete instanceof Error) return faultFromError(res.incomplete);
      return classify(res.statusCode, res.headers["retry-after"], res.body.toString("utf8"), now);
    } catch (err) {
      return faultFromError(err);
    }
  }

  return { getTask, close: () => agent.close(), destroy: () => agent.destroy() };
}

function classify(
  status: number,
  retryAfter: string | string[] | undefined,
  text: string,
  now: number,
): PollResult {
  if (status === 200) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return { kind: "fault", outcome: "bad_response", message: "the 200 answer is not JSON" };
    }
    const parsed = TaskAnswerSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return {
        kind: "fault",
        outcome: "bad_response",
        message:
          `unexpected task shape: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim(),
      };
    }
    return { kind: "ok", task: parsed.data };
  }
  if (status === 404) return { kind: "rejected", code: "TASK_NOT_FOUND" };
  if (status === 401) return { kind: "rejected", code: "INVALID_API_KEY" };
  if (status === 429)
    return { kind: "rate_limited", retryAfterMs: parseRetryAfter(retryAfter, now) };
  if (status >= 500)
    return { kind: "fault", outcome: "5xx", message: `upstream answered ${status}` };
  return { kind: "fault", outcome: "bad_response", message: `upstream answered ${status}` };
}

function faultFromError(err: unknown): PollResult {
  if (isTimeout(err)) return { kind: "fault", outcome: "timeout", message: "upstream timed out" };
  const e = err as { name?: string; code?: string; message?: string };
  return {
    kind: "fault",
    outcome: "network",
    message: `${e.code ?? e.name ?? "error"}: ${e.message ?? ""}`.trim(),
  };
}
