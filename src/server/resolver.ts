// Resolving SOCKS4a names without letting a client starve anyone else's.
//
// dns.lookup is getaddrinfo(3) on libuv's 4-thread pool, with no timeout and no cancellation:
// eight names whose DNS never answers pinned the pool, and every other name (even one from
// /etc/hosts) then waited out the handshake deadline. This resolver asks DNS through c-ares
// (dns.Resolver: asynchronous sockets, no thread pool), with
//   - a deadline per query, after which the query is cancelled;
//   - cancellation when the asking session ends (its place in the caps is freed at once);
//   - caps on queries in flight, overall and per client address (over a cap: DnsOverloaded);
//   - one query per name at a time, however many sessions ask (they share its answer);
//   - a small cache: answers for their TTL (capped), "no such name" for a short negative TTL.
// c-ares reads the name servers from /etc/resolv.conf but not /etc/hosts, so /etc/hosts is
// consulted here first (re-read when it changes). Search domains are not applied: names are
// resolved as given (fully qualified).
import dns from 'node:dns';
import { readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { Reason, SocksError } from '../errors.ts';
import { unmapIpv4 } from '../policy/ip.ts';
import type { Resolver } from './upstream.ts';

export interface ResolverOptions {
  timeoutMs: number; // one query's deadline
  maxInFlight: number; // distinct queries in flight, all sources together
  maxPerSource: number; // sessions of one client address waiting on DNS at once
  cacheEntries?: number; // names remembered (positive and negative together)
  maxTtlMs?: number; // positive answers are kept for their TTL, at most this
  negativeTtlMs?: number; // "no such name" is remembered this long
  hostsPath?: string; // '/etc/hosts'
  servers?: string[]; // name servers; default: those of /etc/resolv.conf
}

interface Cached {
  address: string | null; // null: the name does not exist (or has no IPv4 address)
  expires: number;
}

interface Query {
  waiters: number;
  resolver: dns.promises.Resolver;
  answer: Promise<string>;
}

const NEGATIVE_CODES = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME', 'EBADNAME', 'EFORMERR']);

/** Parses an /etc/hosts text: name (lower case) → its first IPv4 address. */
export function parseHosts(text: string): Map<string, string> {
  const names = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const fields = raw.replace(/#.*/, '').trim().split(/\s+/);
    const address = unmapIpv4(fields[0] ?? '');
    if (fields.length < 2 || !net.isIPv4(address)) continue;
    for (const name of fields.slice(1)) {
      const key = name.toLowerCase().replace(/\.$/, '');
      if (!names.has(key)) names.set(key, address);
    }
  }
  return names;
}

export interface AsyncResolver {
  resolve: Resolver;
  /** Distinct DNS queries in flight now. */
  readonly inFlight: number;
}

export function createResolver(options: ResolverOptions): AsyncResolver {
  const cacheEntries = options.cacheEntries ?? 1000;
  const maxTtlMs = options.maxTtlMs ?? 300_000;
  const negativeTtlMs = options.negativeTtlMs ?? 10_000;
  const hostsPath = options.hostsPath ?? '/etc/hosts';
  const cache = new Map<string, Cached>();
  const queries = new Map<string, Query>();
  const perSource = new Map<string, number>();

  let hosts = new Map<string, string>();
  let hostsStamp = '';
  let hostsCheckedAt = -Infinity;
  /** /etc/hosts, re-read when its mtime or size changed; checked at most once a second. */
  const hostsFile = (now: number): Map<string, string> => {
    if (now - hostsCheckedAt < 1000) return hosts;
    hostsCheckedAt = now;
    try {
      const stat = statSync(hostsPath);
      const stamp = `${stat.mtimeMs}:${stat.size}`;
      if (stamp !== hostsStamp) {
        hosts = parseHosts(readFileSync(hostsPath, 'utf8'));
        hostsStamp = stamp;
      }
    } catch {
      hosts = new Map(); // no hosts file: DNS alone
      hostsStamp = '';
    }
    return hosts;
  };

  const remember = (name: string, address: string | null, ttlMs: number): void => {
    if (ttlMs <= 0) return;
    cache.delete(name);
    cache.set(name, { address, expires: Date.now() + ttlMs });
    if (cache.size > cacheEntries) cache.delete(cache.keys().next().value as string);
  };

  const ask = (name: string): Query => {
    const resolver = new dns.promises.Resolver({ timeout: options.timeoutMs, tries: 1 });
    if (options.servers !== undefined) resolver.setServers(options.servers);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      // c-ares's own timeout is per server and per try: this one bounds the whole query.
      timer = setTimeout(() => {
        resolver.cancel();
        reject(new SocksError(Reason.DnsFailed, `no DNS answer within ${options.timeoutMs} ms`));
      }, options.timeoutMs);
    });
    const lookup = resolver.resolve4(name, { ttl: true }).then(
      (records) => {
        const first = records[0];
        if (first === undefined) throw new SocksError(Reason.DnsFailed, 'no IPv4 address');
        remember(name, first.address, Math.min(first.ttl * 1000, maxTtlMs));
        return first.address;
      },
      (error: NodeJS.ErrnoException) => {
        if (NEGATIVE_CODES.has(error.code ?? '')) remember(name, null, negativeTtlMs);
        throw new SocksError(Reason.DnsFailed, `cannot resolve host (${error.code ?? error.message})`, {
          cause: error,
        });
      },
    );
    const answer = Promise.race([lookup, deadline]).finally(() => {
      clearTimeout(timer);
      if (queries.get(name)?.resolver === resolver) queries.delete(name);
    });
    answer.catch(() => {}); // every waiter handles it; a query nobody waits for any more must not be unhandled
    const query = { waiters: 0, resolver, answer };
    queries.set(name, query);
    return query;
  };

  const resolve: Resolver = async (host, { source = '', signal } = {}) => {
    const literal = unmapIpv4(host);
    if (net.isIPv4(literal)) return literal;
    if (net.isIPv6(literal)) throw new SocksError(Reason.DnsFailed, 'an IPv6 address: SOCKS4 connects to IPv4 only');
    const name = host.toLowerCase().replace(/\.$/, '');
    const now = Date.now();
    const fromHosts = hostsFile(performance.now()).get(name);
    if (fromHosts !== undefined) return fromHosts;
    const cached = cache.get(name);
    if (cached !== undefined && cached.expires > now) {
      if (cached.address === null) throw new SocksError(Reason.DnsFailed, 'no such name (cached)');
      return cached.address;
    }
    if (cached !== undefined) cache.delete(name);

    const held = perSource.get(source) ?? 0;
    if (held >= options.maxPerSource)
      throw new SocksError(Reason.DnsOverloaded, 'this client has too many DNS queries in flight');
    let query = queries.get(name);
    if (query === undefined) {
      if (queries.size >= options.maxInFlight)
        throw new SocksError(Reason.DnsOverloaded, 'too many DNS queries in flight');
      query = ask(name);
    }
    const joined = query;
    joined.waiters++;
    perSource.set(source, held + 1);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new SocksError(Reason.ClientAborted, 'resolution abandoned'));
      if (signal?.aborted === true) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([joined.answer, aborted]);
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      const left = (perSource.get(source) ?? 1) - 1;
      if (left === 0) perSource.delete(source);
      else perSource.set(source, left);
      // The last session waiting for this name went away: stop asking.
      if (--joined.waiters === 0 && queries.get(name) === joined) {
        queries.delete(name);
        joined.resolver.cancel();
      }
    }
  };

  return {
    resolve,
    get inFlight() {
      return queries.size;
    },
  };
}
