import { describe, expect, it } from "vitest";
import { checkCallbackUrl } from "../../src/domain/callback-url.js";

const strict = { allowPrivate: false, requireHttps: false };
const httpsOnly = { allowPrivate: false, requireHttps: true };
const permissive = { allowPrivate: true, requireHttps: false };

describe("checkCallbackUrl accepts public http(s) URLs and returns them normalized", () => {
  it.each<[string, string]>([
    ["https://example.com/hook", "https://example.com/hook"],
    ["http://example.com/hook", "http://example.com/hook"],
    [
      "HTTPS://App.Example.COM:8443/hooks/vibepeak?x=1#frag",
      "https://app.example.com:8443/hooks/vibepeak?x=1#frag",
    ],
    ["https://example.com", "https://example.com/"],
    ["http://8.8.8.8/hook", "http://8.8.8.8/hook"],
    ["https://[2606:4700::1111]/hook", "https://[2606:4700::1111]/hook"],
    ["https://[::ffff:8.8.8.8]/", "https://[::ffff:808:808]/"],
    ["  https://example.com/padded  ", "https://example.com/padded"],
    ["https://bücher.example/hook", "https://xn--bcher-kva.example/hook"],
    ["https://localhost.example.com/hook", "https://localhost.example.com/hook"],
    ["https://mylocalhost/hook", "https://mylocalhost/hook"],
  ])("%s", (raw, url) => {
    expect(checkCallbackUrl(raw, strict)).toEqual({ ok: true, url });
  });

  it("a URL of exactly 2048 characters passes", () => {
    const base = "https://example.com/";
    const raw = base + "a".repeat(2048 - base.length);
    expect(checkCallbackUrl(raw, strict)).toEqual({ ok: true, url: raw });
  });
});

describe("checkCallbackUrl refuses malformed or unsupported URLs", () => {
  it.each<[string, string]>([
    ["/hooks/vibepeak", "callback_url: must be an absolute https or http URL"],
    ["example.com/hook", "callback_url: must be an absolute https or http URL"],
    ["//example.com/hook", "callback_url: must be an absolute https or http URL"],
    ["", "callback_url: must be an absolute https or http URL"],
    ["https://exa mple.com/", "callback_url: must be an absolute https or http URL"],
    ["https://[fe80::1%25eth0]/", "callback_url: must be an absolute https or http URL"],
    ["ftp://example.com/hook", "callback_url: must be an https or http URL"],
    ["file:///etc/passwd", "callback_url: must be an https or http URL"],
    ["javascript:alert(1)", "callback_url: must be an https or http URL"],
    ["data:text/plain,hi", "callback_url: must be an https or http URL"],
    ["ws://example.com/hook", "callback_url: must be an https or http URL"],
    ["https://user:pass@example.com/hook", "callback_url: must not contain a username or password"],
    ["https://user@example.com/hook", "callback_url: must not contain a username or password"],
    ["https://:secret@example.com/hook", "callback_url: must not contain a username or password"],
  ])("%j → %s", (raw, message) => {
    expect(checkCallbackUrl(raw, strict)).toEqual({ ok: false, message });
  });

  it("a URL longer than 2048 characters is refused", () => {
    const base = "https://example.com/";
    const raw = base + "a".repeat(2049 - base.length);
    expect(checkCallbackUrl(raw, strict)).toEqual({
      ok: false,
      message: "callback_url: must be at most 2048 characters",
    });
  });

  it("a URL that only grows past 2048 characters once percent-encoded is refused", () => {
    const raw = `https://example.com/${"é".repeat(1500)}`;
    expect(raw.length).toBeLessThanOrEqual(2048);
    expect(checkCallbackUrl(raw, strict)).toEqual({
      ok: false,
      message: "callback_url: must be at most 2048 characters once normalized",
    });
  });
});

describe("requireHttps", () => {
  it.each<[string, boolean]>([
    ["https://example.com/hook", true],
    ["http://example.com/hook", false],
    ["HTTP://example.com/hook", false],
  ])("%s accepted: %s", (raw, accepted) => {
    const result = checkCallbackUrl(raw, httpsOnly);
    expect(result.ok).toBe(accepted);
    if (!result.ok) expect(result.message).toBe("callback_url: must use https");
  });

  it("http is fine when https is not required", () => {
    expect(checkCallbackUrl("http://example.com/hook", strict).ok).toBe(true);
  });
});

describe("checkCallbackUrl refuses non-public literal addresses in every form the URL parser accepts", () => {
  it.each<[string, string]>([
    ["http://127.0.0.1/hook", "127.0.0.1 is a loopback address"],
    ["http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"],
    ["http://127.0.0.1./hook", "127.0.0.1 is a loopback address"],
    ["http://127.1/", "127.0.0.1 is a loopback address"],
    ["http://2130706433/", "127.0.0.1 is a loopback address"],
    ["http://0177.0.0.1/", "127.0.0.1 is a loopback address"],
    ["http://0x7f.1/", "127.0.0.1 is a loopback address"],
    ["http://0x7f000001/", "127.0.0.1 is a loopback address"],
    ["http://１２７.０.０.１/", "127.0.0.1 is a loopback address"],
    ["http://0/", "0.0.0.0 is an unspecified address"],
    ["http://0.0.0.0:9000/", "0.0.0.0 is an unspecified address"],
    ["http://10.0.0.5/", "10.0.0.5 is a private address"],
    ["http://012.0.0.5/", "10.0.0.5 is a private address"],
    ["http://172.16.3.4/", "172.16.3.4 is a private address"],
    ["http://192.168.1.1/", "192.168.1.1 is a private address"],
    ["http://100.64.1.1/", "100.64.1.1 is a private address"],
    ["http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"],
    ["http://2852039166/", "169.254.169.254 is a link-local address"],
    ["http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254 is a link-local address"],
    ["http://224.0.0.1/", "224.0.0.1 is a multicast address"],
    ["http://255.255.255.255/", "255.255.255.255 is a reserved address"],
    ["http://192.0.2.10/", "192.0.2.10 is a reserved address"],
    ["http://[::1]/", "::1 is a loopback address"],
    ["http://[0:0:0:0:0:0:0:1]/", "::1 is a loopback address"],
    ["http://[::]/", ":: is an unspecified address"],
    ["http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 is a loopback address"],
    ["http://[::ffff:7f00:1]/", "::ffff:7f00:1 is a loopback address"],
    ["http://[::127.0.0.1]/", "::7f00:1 is a loopback address"],
    ["http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe is a link-local address"],
    ["http://[64:ff9b::169.254.169.254]/", "64:ff9b::a9fe:a9fe is a link-local address"],
    ["http://[2002:a9fe:a9fe::]/", "2002:a9fe:a9fe:: is a link-local address"],
    ["http://[fe80::1]/", "fe80::1 is a link-local address"],
    ["http://[fd00::1]/", "fd00::1 is a unique-local address"],
    ["http://[fc00::1]:8443/", "fc00::1 is a unique-local address"],
    ["http://[ff02::1]/", "ff02::1 is a multicast address"],
    ["http://[2001:db8::1]/", "2001:db8::1 is a reserved address"],
  ])("%s", (raw, reason) => {
    expect(checkCallbackUrl(raw, strict)).toEqual({
      ok: false,
      message: `callback_url: ${reason}`,
    });
    expect(checkCallbackUrl(raw.replace(/^http:/, "https:"), strict).ok).toBe(false);
  });
});

describe("checkCallbackUrl refuses localhost-style names", () => {
  it.each<[string, string]>([
    ["http://localhost/hook", "localhost"],
    ["http://LOCALHOST:3000/hook", "localhost"],
    ["http://localhost./hook", "localhost."],
    ["http://localhost../hook", "localhost.."],
    ["http://api.localhost/hook", "api.localhost"],
    ["http://a.b.localhost./hook", "a.b.localhost."],
    ["http://localhost.localdomain/hook", "localhost.localdomain"],
    ["http://ip6-localhost/hook", "ip6-localhost"],
    ["http://ip6-loopback/hook", "ip6-loopback"],
    ["http://localhost6/hook", "localhost6"],
    ["http://ｌｏｃａｌｈｏｓｔ/hook", "localhost"],
  ])("%s", (raw, host) => {
    expect(checkCallbackUrl(raw, strict)).toEqual({
      ok: false,
      message: `callback_url: ${host} is a loopback name`,
    });
  });
});

describe("allowPrivate", () => {
  it.each([
    ["http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"],
    ["http://2130706433/", "http://127.0.0.1/"],
    ["http://localhost:3000/hook", "http://localhost:3000/hook"],
    ["http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/"],
    ["http://[fd00::1]/", "http://[fd00::1]/"],
    ["http://10.0.0.5/", "http://10.0.0.5/"],
  ])("%s is accepted", (raw, url) => {
    expect(checkCallbackUrl(raw, permissive)).toEqual({ ok: true, url });
  });

  it("still applies the scheme, credential and https rules", () => {
    expect(checkCallbackUrl("ftp://127.0.0.1/", permissive).ok).toBe(false);
    expect(checkCallbackUrl("http://u:p@127.0.0.1/", permissive).ok).toBe(false);
    expect(
      checkCallbackUrl("http://127.0.0.1/", { allowPrivate: true, requireHttps: true }),
    ).toEqual({ ok: false, message: "callback_url: must use https" });
  });
});
