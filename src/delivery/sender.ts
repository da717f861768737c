import { Agent } from "undici";
import { parseRetryAfter } from "../domain/backoff.js";
import { exchange, isTimeout } from "../outbound.js";
import { VERSION } from "../version.js";
import { createGuardedConnector, type LookupAll } from "./guard.js";
import { webhookHeaders } from "./sign.js";

/** The first bytes of a consumer's answer that are kept with the attempt. */
export const RESPONSE_EXCERPT_BYTES = 1024;

export interface Attempt {
  at: number;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  responseBody: string | null;
  /** From a 429 or 503: the consumer asks us to wait this long. */
  retryAfterMs: number | null;
}

export interface WebhookMessage {
  url: string;
  /** The event id: `webhook-id`, the same on every attempt. */
  id: string;
  /** Sent byte for byte as signed. */
  body: string;
  /** Newest first; two during a rotation. */
  secrets: readonly string[];
}

export interface Sender {
  send(message: WebhookMessage, now: number): Promise<Attempt>;
  /** Waits for requests in flight, then closes the sockets. */
  close(): Promise<void>;
  /** Aborts requests in flight and closes the sockets (shutdown past its grace period). */
  destroy(): Promise<void>;
}

export interface SenderOptions {
  timeoutMs: number;
  allowPrivate: boolean;
  connections?: number;
  /** The resolver (tests make a name resolve to loopback); default `dns.lookup`. */
  lookup?: LookupAll;
}

/**
 * POSTs signed webhooks. The connector checks the address actually connected to (SPEC §6), so a
 * name that resolves or re-resolves to a private address fails the attempt. Redirects are not
 * followed: undici's `dispatch` never follows them, and a 3xx is not a 2xx.
 */
export function createSender(opts: SenderOptions): Sender {
  const agent = new Agent({
    connections: opts.connections ?? 8,
    keepAliveTimeout: 10_000,
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
    connect: createGuardedConnector({
      allowPrivate: opts.allowPrivate,
      timeoutMs: opts.timeoutMs,
      ...(opts.lookup ? { lookup: opts.lookup } : {}),
    }),
  });
  const userAgent = `taskhook/${VERSION}`;

  async function send(message: WebhookMessage, now: number): Promise<Attempt> {
    const started = performance.now();
    const headers = webhookHeaders({
      id: message.id,
      timestampSec: Math.floor(now / 1000),
      body: message.body,
      secrets: message.secrets,
      userAgent,
    });
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const url = new URL(message.url);
      const res = await exchange(agent, {
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: "POST",
        headers,
        body: message.body,
        timeoutMs: opts.timeoutMs,
        // The status line is the answer: a body that stalls past the time-out or breaks off only
        // shortens the excerpt (failing a 2xx for it would send the consumer a duplicate).
        maxBodyBytes: RESPONSE_EXCERPT_BYTES,
      });
      const statusCode = res.statusCode;
      const retryAfterMs =
        statusCode === 429 || statusCode === 503
          ? parseRetryAfter(res.headers["retry-after"], now)
          : null;
      const ok = statusCode >= 200 && statusCode < 300;
      return {
        at: now,
        durationMs: elapsed(),
        statusCode,
        error: ok ? null : describeStatus(statusCode),
        responseBody: utf8Prefix(res.body, RESPONSE_EXCERPT_BYTES),
        retryAfterMs,
      };
    } catch (err) {
      return {
        at: now,
        durationMs: elapsed(),
        statusCode: null,
        error: describeError(err),
        responseBody: null,
        retryAfterMs: null,
      };
    }
  }

  return { send, close: () => agent.close(), destroy: () => agent.destroy() };
}

/**
 * At most `max` bytes as text, in whole characters. A body cut at the limit, or broken off, may end
 * inside a multi-byte character; decoded, that would be U+FFFD (3 bytes, possibly over the limit, and
 * not what was sent), so the incomplete character is left out.
 */
export function utf8Prefix(bytes: Buffer, max: number): string {
  const head = bytes.subarray(0, max);
  let end = head.length;
  // Back over the continuation bytes (10xxxxxx, at most three) to the last character's lead byte.
  let lead = end - 1;
  while (lead > end - 4 && lead > 0 && ((head[lead] ?? 0) & 0xc0) === 0x80) lead -= 1;
  const first = head[lead] ?? 0;
  const length = first >= 0xf0 ? 4 : first >= 0xe0 ? 3 : first >= 0xc0 ? 2 : 1;
  if (lead + length > end) end = lead;
  return head.subarray(0, end).toString("utf8");
}

function describeStatus(status: number): string {
  if (status >= 300 && status < 400) return `HTTP ${status}: redirects are not followed`;
  return `HTTP ${status}`;
}

function describeError(err: unknown): string {
  if (isTimeout(err)) return "timeout: no answer within DELIVERY_TIMEOUT_MS";
  const e = err as { name?: string; code?: string; message?: string };
  const code = e.code ?? e.name ?? "error";
  return `${code}: ${e.message ?? "request failed"}`;
}
