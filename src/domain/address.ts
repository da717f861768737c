import { isIP } from "node:net";

export type AddressClass =
  | "public"
  | "loopback"
  | "private"
  | "link-local"
  | "unique-local"
  | "multicast"
  | "unspecified"
  | "reserved";

type Range = readonly [base: bigint, prefix: number, cls: AddressClass];

// Most specific first: the first matching range wins.
const V4_RANGES: readonly Range[] = [
  v4("0.0.0.0", 8, "unspecified"),
  v4("10.0.0.0", 8, "private"),
  v4("100.64.0.0", 10, "private"), // carrier-grade NAT: someone's internal network
  v4("127.0.0.0", 8, "loopback"),
  v4("169.254.0.0", 16, "link-local"), // cloud metadata lives here
  v4("172.16.0.0", 12, "private"),
  v4("192.0.0.0", 24, "reserved"),
  v4("192.0.2.0", 24, "reserved"),
  v4("192.88.99.0", 24, "reserved"),
  v4("192.168.0.0", 16, "private"),
  v4("198.18.0.0", 15, "reserved"),
  v4("198.51.100.0", 24, "reserved"),
  v4("203.0.113.0", 24, "reserved"),
  v4("224.0.0.0", 4, "multicast"),
  v4("240.0.0.0", 4, "reserved"), // includes 255.255.255.255
];

const V6_RANGES: readonly Range[] = [
  v6("64:ff9b:1::", 48, "reserved"), // local-use NAT64: the embedded IPv4 may be anything internal
  v6("100::", 64, "reserved"),
  v6("2001::", 23, "reserved"), // IETF protocol assignments, Teredo included
  v6("2001:db8::", 32, "reserved"),
  v6("3fff::", 20, "reserved"),
  v6("5f00::", 16, "reserved"),
  v6("fc00::", 7, "unique-local"),
  v6("fe80::", 10, "link-local"),
  v6("fec0::", 10, "private"), // deprecated site-local, still routed inside some networks
  v6("ff00::", 8, "multicast"),
];

// Ranges that carry an IPv4 address in their low bits; the IPv4 address decides, since
// that is where a translator or the kernel will actually connect.
const V4_MAPPED = v6("::ffff:0:0", 96, "reserved");
const V4_TRANSLATED = v6("::ffff:0:0:0", 96, "reserved");
const V4_COMPATIBLE = v6("::", 96, "reserved");
const NAT64 = v6("64:ff9b::", 96, "reserved");
const SIX_TO_FOUR = v6("2002::", 16, "reserved");
const GLOBAL_UNICAST = v6("2000::", 3, "public");

const V4_MASK = 0xffff_ffffn;

export function classifyIp(ip: string): AddressClass | null {
  const version = isIP(ip);
  if (version === 4) {
    const n = parseIpv4(ip);
    return n === null ? null : classifyV4(n);
  }
  if (version === 6) {
    const n = parseIpv6(ip);
    return n === null ? null : classifyV6(n);
  }
  return null;
}

export function isPublicIp(ip: string): boolean {
  return classifyIp(ip) === "public";
}

function classifyV4(n: bigint): AddressClass {
  return matchRange(n, 32, V4_RANGES) ?? "public";
}

function classifyV6(n: bigint): AddressClass {
  if (n === 0n) return "unspecified";
  if (n === 1n) return "loopback";
  for (const range of [V4_MAPPED, V4_TRANSLATED, V4_COMPATIBLE, NAT64]) {
    if (inRange(n, 128, range)) return classifyV4(n & V4_MASK);
  }
  if (inRange(n, 128, SIX_TO_FOUR)) return classifyV4((n >> 80n) & V4_MASK);
  const special = matchRange(n, 128, V6_RANGES);
  if (special !== null) return special;
  // Outside 2000::/3 nothing is allocated for global unicast.
  return inRange(n, 128, GLOBAL_UNICAST) ? "public" : "reserved";
}

function matchRange(n: bigint, bits: number, ranges: readonly Range[]): AddressClass | null {
  for (const range of ranges) {
    if (inRange(n, bits, range)) return range[2];
  }
  return null;
}

function inRange(n: bigint, bits: number, [base, prefix]: Range): boolean {
  const shift = BigInt(bits - prefix);
  return n >> shift === base >> shift;
}

function v4(ip: string, prefix: number, cls: AddressClass): Range {
  const n = parseIpv4(ip);
  if (n === null) throw new Error(`bad IPv4 range ${ip}`);
  return [n, prefix, cls];
}

function v6(ip: string, prefix: number, cls: AddressClass): Range {
  const n = parseIpv6(ip);
  if (n === null) throw new Error(`bad IPv6 range ${ip}`);
  return [n, prefix, cls];
}

function parseIpv4(ip: string): bigint | null {
  const parts = ip.split(".");
  if (parts.length !== 4) return null;
  let n = 0n;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    n = (n << 8n) | BigInt(octet);
  }
  return n;
}

function parseIpv6(ip: string): bigint | null {
  const zone = ip.indexOf("%");
  let s = zone === -1 ? ip : ip.slice(0, zone);
  const lastColon = s.lastIndexOf(":");
  const tail = s.slice(lastColon + 1);
  if (tail.includes(".")) {
    const embedded = parseIpv4(tail);
    if (embedded === null) return null;
    s = `${s.slice(0, lastColon + 1)}${(embedded >> 16n).toString(16)}:${(embedded & 0xffffn).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const head = splitGroups(halves[0] ?? "");
  const rest = halves.length === 2 ? splitGroups(halves[1] ?? "") : [];
  if (head === null || rest === null) return null;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  let n = 0n;
  for (const group of [...head, ...new Array<number>(missing).fill(0), ...rest]) {
    n = (n << 16n) | BigInt(group);
  }
  return n;
}

function splitGroups(s: string): number[] | null {
  if (s === "") return [];
  const groups: number[] = [];
  for (const group of s.split(":")) {
    if (!/^[0-9a-f]{1,4}$/i.test(group)) return null;
    groups.push(Number.parseInt(group, 16));
  }
  return groups;
}
