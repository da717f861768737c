import { type AddressClass, classifyIp } from "./address.js";

export const MAX_CALLBACK_URL_LENGTH = 2048;

export interface CallbackUrlOptions {
  allowPrivate: boolean;
  requireHttps: boolean;
}

export type CallbackUrlCheck = { ok: true; url: string } | { ok: false; message: string };

// Names that resolve to the machine itself without asking DNS (RFC 6761 and common /etc/hosts).
const LOOPBACK_NAMES = new Set([
  "localhost",
  "localhost.localdomain",
  "localhost6",
  "localhost6.localdomain6",
  "ip6-localhost",
  "ip6-loopback",
]);

export function checkCallbackUrl(raw: string, opts: CallbackUrlOptions): CallbackUrlCheck {
  if (raw.length > MAX_CALLBACK_URL_LENGTH) {
    return fail(`must be at most ${MAX_CALLBACK_URL_LENGTH} characters`);
  }
  // The WHATWG parser is what undici will use to connect, so its reading of the host
  // (decimal, octal and hex IPv4, IDNA, trailing dots) is the one that must be judged.
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail("must be an absolute https or http URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return fail("must be an https or http URL");
  }
  if (opts.requireHttps && url.protocol !== "https:") {
    return fail("must use https");
  }
  if (url.username !== "" || url.password !== "") {
    return fail("must not contain a username or password");
  }
  if (url.href.length > MAX_CALLBACK_URL_LENGTH) {
    return fail(`must be at most ${MAX_CALLBACK_URL_LENGTH} characters once normalized`);
  }
  if (!opts.allowPrivate) {
    const refusal = refuseHost(url.hostname);
    if (refusal !== null) return fail(refusal);
  }
  return { ok: true, url: url.href };
}

function refuseHost(hostname: string): string | null {
  const ip = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
  const cls = classifyIp(ip);
  if (cls !== null) {
    return cls === "public" ? null : `${ip} is ${withArticle(cls)} address`;
  }
  const name = hostname.replace(/\.+$/, "");
  if (LOOPBACK_NAMES.has(name) || name.endsWith(".localhost")) {
    return `${hostname} is a loopback name`;
  }
  return null;
}

function withArticle(cls: AddressClass): string {
  return cls === "unspecified" ? `an ${cls}` : `a ${cls}`;
}

function fail(reason: string): CallbackUrlCheck {
  return { ok: false, message: `callback_url: ${reason}` };
}
