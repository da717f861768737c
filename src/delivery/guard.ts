import dns, { type LookupAddress, type LookupAllOptions, type LookupOptions } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { buildConnector } from "undici";
import { type AddressClass, classifyIp } from "../domain/address.js";

export const ADDRESS_BLOCKED = "EADDRBLOCKED";

/**
 * Thrown when a delivery would reach a non-public address. undici's `request`/`dispatch`
 * reject with this very error (read `err.code`); `fetch` wraps it in a TypeError whose
 * `cause` is this error (read `err.cause.code`).
 */
export class AddressBlockedError extends Error {
  readonly code = ADDRESS_BLOCKED;

  constructor(
    readonly host: string,
    readonly address: string | undefined,
    readonly addressClass: AddressClass | "unknown",
    how: How,
  ) {
    super(`callback host ${host} ${describe(how, address, addressClass)}: refused`);
    this.name = "AddressBlockedError";
  }
}

type How = "resolved to" | "connected to" | "is";

function describe(how: How, address: string | undefined, cls: AddressClass | "unknown"): string {
  if (address === undefined) return `${how} an unknown address`;
  if (how === "is") return `is ${cls === "unspecified" ? "an" : "a"} ${cls} address`;
  return `${how} ${address} (${cls})`;
}

/** What the guard needs from a resolver; `dns.lookup` satisfies it. */
export type LookupAll = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

export interface GuardOptions {
  allowPrivate: boolean;
  lookup?: LookupAll;
}

export interface GuardedConnectorOptions extends GuardOptions {
  timeoutMs?: number;
}

/**
 * A `net.connect` `lookup` that refuses when any resolved address is non-public. Checking
 * the addresses handed to the socket (rather than resolving once at registration) is what
 * defeats DNS rebinding: each connection resolves again and is judged again.
 */
export function createGuardedLookup(opts: GuardOptions): LookupFunction {
  const resolve: LookupAll = opts.lookup ?? dns.lookup;
  return (hostname: string, options: LookupOptions, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err, "");
        return;
      }
      const first = addresses[0];
      if (first === undefined) {
        callback(notFound(hostname), "");
        return;
      }
      if (!opts.allowPrivate) {
        for (const { address } of addresses) {
          const refusal = refuse(hostname, address, "resolved to");
          if (refusal !== null) {
            callback(refusal, "");
            return;
          }
        }
      }
      if (options.all === true) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };
}

/**
 * An undici connector for `new Agent({ connect: createGuardedConnector(...) })`.
 */
export function createGuardedConnector(opts: GuardedConnectorOptions): buildConnector.connector {
  const connect = buildConnector({
    lookup: createGuardedLookup(opts),
    ...(opts.timeoutMs === undefined ? {} : { timeout: opts.timeoutMs }),
  });
  return opts.allowPrivate ? connect : guardConnector(connect);
}

/**
 * Node skips `lookup` for IP literals, so those are judged here; the peer address is judged
 * once more after connecting, before a single byte of the request is written.
 */
export function guardConnector(connect: buildConnector.connector): buildConnector.connector {
  return (options, callback) => {
    const host = options.hostname.replace(/^\[(.*)\]$/, "$1");
    if (isIP(host) !== 0) {
      const refusal = refuse(host, host, "is");
      if (refusal !== null) {
        callback(refusal, null);
        return;
      }
    }
    connect(options, (err, socket) => {
      if (err !== null) {
        callback(err, null);
        return;
      }
      const refusal = refuse(host, socket.remoteAddress, "connected to");
      if (refusal !== null) {
        socket.destroy();
        callback(refusal, null);
        return;
      }
      callback(null, socket);
    });
  };
}

function refuse(host: string, address: string | undefined, how: How): AddressBlockedError | null {
  const cls = address === undefined ? null : classifyIp(address);
  if (cls === "public") return null;
  return new AddressBlockedError(host, address, cls ?? "unknown", how);
}

function notFound(hostname: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
  err.code = "ENOTFOUND";
  return err;
}
