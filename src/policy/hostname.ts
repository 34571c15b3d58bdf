// SOCKS4a names in one canonical form, decided once before policy, logs, traces and DNS.
//
// The system resolver (and every browser) applies IDNA/UTS-46 to a name: fullwidth letters, math
// alphanumerics and other compatibility forms map to ASCII, soft hyphens (U+00AD) and zero-width
// spaces are dropped, the rest becomes punycode (`xn--`). Comparing policy globs with the raw text
// would let `ｅｘａｍｐｌｅ.com` past a Deny on `example.com`. So a name is mapped exactly once,
// with Node's `url.domainToASCII` (WHATWG URL "domain to ASCII": UTS-46 processing, transitional
// off), lower-cased, without its root dot, and what comes out is what is matched and resolved.
//
// Names spelled as addresses are addresses. The one syntax we accept is the WHATWG URL
// Standard's IPv4 parser, which is also what inet_aton(3) and so getaddrinfo accept: one to four
// dot-separated parts, each decimal, octal (leading 0) or hex (0x), the last part filling the
// remaining bytes (`2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1` are all 127.0.0.1), plus an
// optional trailing dot. A name whose last label is a number must parse that way or it is
// refused (`foo.123`). IPv6 literals are refused except IPv4-mapped ones (`::ffff:10.0.0.1`,
// bracketed or not), which are their IPv4 address: SOCKS4 speaks IPv4 only.

import { domainToASCII } from 'node:url';
import { formatIpv4, NOT_IPV4, parseIpv4 } from './ip.ts';

export type CanonicalHost =
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'address'; readonly ip: number; readonly text: string }
  | { readonly kind: 'invalid'; readonly detail: string };

/** RFC 1035 §2.3.4 limits (255 octets on the wire = 253 characters of text without the root). */
export const MAX_NAME_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

// Letters, digits, hyphen inside; underscore is accepted (service names like `_dmarc`, hosts that
// resolvers answer for in practice). No label starts or ends with a hyphen (RFC 1123 §2.1).
const LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;
const ASCII_RE = /^[\x21-\x7e]*$/;
const PLAIN_NAME_RE = /^[A-Za-z0-9._-]+$/;
// ASCII other than letters, digits, '-', '.', '_' (and C1 controls): the URL parser would strip
// some (tab, newline) and stop at others (`evil.com/x` → `evil.com`), so they are refused.
const NOT_HOST_CHAR_RE = /[\x00-\x2c\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x9f]/;

/** One part of the WHATWG IPv4 syntax; NaN when it is not one. */
function parseIpv4Number(part: string): number {
  if (part === '') return NaN;
  let digits = part;
  let radix = 10;
  if (part.length >= 2 && (part.startsWith('0x') || part.startsWith('0X'))) {
    digits = part.slice(2);
    radix = 16;
  } else if (part.length >= 2 && part.startsWith('0')) {
    digits = part.slice(1);
    radix = 8;
  }
  if (digits === '') return 0;
  const valid = radix === 16 ? /^[0-9a-fA-F]+$/ : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!valid.test(digits)) return NaN;
  // Long digit runs are out of range anyway; cap before Number() loses precision.
  if (digits.length > 12) return Infinity;
  return parseInt(digits, radix);
}

function partsOf(name: string): string[] {
  const parts = name.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** WHATWG "ends in a number": the last label is digits, or parses as an IPv4 number (0x…). */
export function endsInNumber(name: string): boolean {
  const last = partsOf(name).at(-1) ?? '';
  return /^[0-9]+$/.test(last) || !Number.isNaN(parseIpv4Number(last));
}

/** The WHATWG URL Standard IPv4 parser; NOT_IPV4 on failure. */
export function parseIpv4Spelling(name: string): number {
  const parts = partsOf(name);
  if (parts.length > 4) return NOT_IPV4;
  const numbers = parts.map(parseIpv4Number);
  if (numbers.some((n) => Number.isNaN(n))) return NOT_IPV4;
  const last = numbers.pop() as number;
  if (numbers.some((n) => n > 255)) return NOT_IPV4;
  if (last >= 256 ** (4 - numbers.length)) return NOT_IPV4;
  let ip = last;
  numbers.forEach((n, i) => (ip += n * 256 ** (3 - i)));
  return ip;
}

function address(ip: number): CanonicalHost {
  return { kind: 'address', ip, text: formatIpv4(ip) };
}

function invalid(detail: string): CanonicalHost {
  return { kind: 'invalid', detail };
}

function checkName(name: string): CanonicalHost {
  if (name.length > MAX_NAME_LENGTH) return invalid(`longer than ${MAX_NAME_LENGTH} characters after IDNA conversion`);
  for (const label of name.split('.')) {
    if (label === '') return invalid('has an empty label');
    if (label.length > MAX_LABEL_LENGTH) return invalid(`has a label longer than ${MAX_LABEL_LENGTH} characters`);
    if (!LABEL_RE.test(label))
      return invalid('has a label that is not letters, digits, "-" and "_" (or starts or ends with "-")');
  }
  return { kind: 'name', name };
}

/** The canonical form of a SOCKS4a name: a name to match and resolve, an address, or invalid. */
export function canonicalizeHost(raw: string): CanonicalHost {
  if (raw.includes(':') || raw.startsWith('[')) {
    const inner = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
    const ip = parseIpv4(inner);
    return ip === NOT_IPV4 ? invalid('is an IPv6 address other than IPv4-mapped (SOCKS4 is IPv4 only)') : address(ip);
  }
  if (NOT_HOST_CHAR_RE.test(raw))
    return invalid('contains a control character, a space or an ASCII symbol other than "-", "." and "_"');
  // Plain ASCII spellings of addresses go through our parser first, so what an address is does
  // not depend on domainToASCII doing the same (it does, by the same standard).
  if (ASCII_RE.test(raw) && endsInNumber(raw)) {
    const ip = parseIpv4Spelling(raw);
    return ip === NOT_IPV4 ? invalid('ends in a number but is not an IPv4 address') : address(ip);
  }
  // Plain LDH names (the common case) map to themselves in lower case under UTS-46; only they
  // skip the converter (measured on a loaded 2-core machine: 4.3 µs a name with it, 1.2 without).
  const ascii = PLAIN_NAME_RE.test(raw) && !raw.toLowerCase().includes('xn--') ? raw.toLowerCase() : domainToASCII(raw);
  if (ascii === '' || ascii === '.') return invalid('is not a host name (IDNA/UTS-46 processing refused it)');
  const name = ascii.endsWith('.') ? ascii.slice(0, -1) : ascii;
  if (endsInNumber(name)) {
    const ip = parseIpv4Spelling(name);
    return ip === NOT_IPV4 ? invalid('ends in a number but is not an IPv4 address') : address(ip);
  }
  return checkName(name.toLowerCase());
}

// IDNA label separators (UTS-46 maps all four to "."), so a glob is split where a name would be.
const SEPARATORS = /[.\u3002\uff0e\uff61]/;
const ASCII_GLOB_LABEL_RE = /^[a-z0-9*?_-]*$/;

export type CanonicalGlob =
  | { readonly ok: true; readonly glob: string }
  | { readonly ok: false; readonly message: string };

/**
 * A `to.hosts` glob in the form requests are matched in: lower case, no root dot, each non-ASCII
 * label converted like a name (`*.bücher.example` is `*.xn--bcher-kva.example`). A label mixing
 * wildcards with non-ASCII letters is refused: it would match inside punycode, which no reader of
 * the policy would expect.
 */
export function canonicalizeHostGlob(raw: string): CanonicalGlob {
  const text = raw.length > 1 && raw.endsWith('.') ? raw.slice(0, -1) : raw;
  const labels: string[] = [];
  for (const label of text.split(SEPARATORS)) {
    const lower = label.toLowerCase();
    if (ASCII_GLOB_LABEL_RE.test(lower)) {
      labels.push(lower);
      continue;
    }
    const quoted = JSON.stringify(label);
    if (/[*?]/.test(label))
      return {
        ok: false,
        message: `label ${quoted} mixes wildcards with other characters than letters, digits, '-' and '_'`,
      };
    const ascii = domainToASCII(label);
    if (ascii === '' || ascii.includes('.') || !LABEL_RE.test(ascii)) {
      return { ok: false, message: `label ${quoted} is not a host name label, even after IDNA (UTS-46) conversion` };
    }
    labels.push(ascii);
  }
  const glob = labels.join('.');
  if (labels.some((l) => l === '')) return { ok: false, message: 'has an empty label' };
  return { ok: true, glob };
}
