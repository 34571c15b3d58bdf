// The server-side scripts behind fleet-wide limits. One script decides every limit of a new
// session at once (one round trip), on Redis's clock so pods with skewed clocks agree. It checks
// all limits before writing any, so a refusal spends no rate token and takes no slot, the same
// rule the in-process limiter follows. All keys of one call share a hash tag (src/limits/redis-keys.ts),
// which is what makes a multi-key script legal on Redis Cluster.
import type { RedisClient } from '../redis/connection.ts';

// Redis time in ms with µs precision. Calling TIME before writing is fine: since Redis 5 scripts
// replicate their effects, not the script.
const NOW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
`;

// Bandwidth bucket stored as "tokens updatedAt"; capacity is one second's worth (as locally).
// Grants at most `want` whole bytes and never goes below zero: pods borrow, Redis does not.
const TAKE_TOKENS_LUA = `
local function take_tokens(key, rate, want, now)
  local tokens, ts = rate, now
  local state = redis.call('GET', key)
  if state then
    local sp = string.find(state, ' ', 1, true)
    tokens = tonumber(string.sub(state, 1, sp - 1))
    ts = tonumber(string.sub(state, sp + 1))
    if now > ts then
      tokens = math.min(rate, tokens + (now - ts) * rate / 1000)
      ts = now
    end
  end
  local grant = math.min(want, math.max(0, math.floor(tokens)))
  tokens = tokens - grant
  redis.call('SET', key, string.format('%.3f %.3f', tokens, ts), 'PX', math.ceil((rate - tokens) * 1000 / rate) + 1000)
  return grant
end
`;

// KEYS: the session's limit keys in the order ARGV[1] names them: r = rate, s = sessions,
// b = bandwidth. ARGV[2..3] = perSecond, burst; ARGV[4..6] = max sessions, lease member, lease
// TTL ms; ARGV[7..8] = bytes per second, bytes wanted now; ARGV[9..] = members of the sessions
// key this pod released since its last call (their ZREM rides along instead of costing a command).
// Returns {0, bytes granted} | {1, retry after ms} (rate) | {2, 0} (concurrency).
// Cheap on purpose (profiled: the script is most of Redis's CPU per session): one TIME, the layout
// read with string.byte (no substrings), and expired leases swept only when the count reaches the
// maximum: below it the dead members cannot change the answer, and at it the sweep keeps the set
// bounded by the maximum.
const ADMIT_LUA = `${NOW_LUA}${TAKE_TOKENS_LUA}
local rate_key, sessions_key, bandwidth_key
local layout = ARGV[1]
for i = 1, #layout do
  local c = string.byte(layout, i)
  if c == 114 then rate_key = KEYS[i] elseif c == 115 then sessions_key = KEYS[i] else bandwidth_key = KEYS[i] end
end
if sessions_key and #ARGV > 8 then redis.call('ZREM', sessions_key, unpack(ARGV, 9)) end
local next_tat
if rate_key then
  local interval = 1000 / tonumber(ARGV[2])
  local tolerance = interval * math.max(1, tonumber(ARGV[3]))
  local tat = tonumber(redis.call('GET', rate_key) or '0') or 0
  if tat < now then tat = now end
  next_tat = tat + interval
  local allow_at = next_tat - tolerance
  if allow_at - now > 0.000001 then return {1, math.ceil(allow_at - now - 0.000001)} end
end
local ttl = tonumber(ARGV[6])
if sessions_key then
  -- Leases of crashed pods are simply expired members, swept when they could matter.
  local max = tonumber(ARGV[4])
  if redis.call('ZCARD', sessions_key) >= max then
    redis.call('ZREMRANGEBYSCORE', sessions_key, '-inf', now)
    if redis.call('ZCARD', sessions_key) >= max then return {2, 0} end
  end
end
if rate_key then
  redis.call('SET', rate_key, string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now) + 1000)
end
if sessions_key then
  redis.call('ZADD', sessions_key, string.format('%.3f', now + ttl), ARGV[5])
  redis.call('PEXPIRE', sessions_key, ttl * 2)
end
local granted = 0
if bandwidth_key then granted = take_tokens(bandwidth_key, tonumber(ARGV[7]), tonumber(ARGV[8]), now) end
return {0, granted}
`;

// KEYS[1] = bandwidth key; ARGV = bytes per second, bytes wanted. Returns the bytes granted.
const GRANT_LUA = `${NOW_LUA}${TAKE_TOKENS_LUA}
return take_tokens(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
`;

// KEYS[1] = sessions key; ARGV[1] = lease TTL ms, ARGV[2..] = this pod's live members. Re-adds
// members that are missing, so counts recover by themselves after Redis lost its data.
const RENEW_LUA = `${NOW_LUA}
local expiry = string.format('%.3f', now + tonumber(ARGV[1]))
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], expiry, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return #ARGV - 1
`;

export interface AdmitArgs {
  readonly rate: { readonly key: string; readonly perSecond: number; readonly burst: number } | null;
  readonly sessions: {
    readonly key: string;
    readonly max: number;
    readonly member: string;
    readonly ttlMs: number;
    /** Members of this key the pod released and has not told Redis yet (removed before counting). */
    readonly releases?: readonly string[];
  } | null;
  readonly bandwidth: { readonly key: string; readonly bytesPerSecond: number; readonly want: number } | null;
}

export type AdmitReply =
  | { readonly code: 0; readonly granted: number }
  | { readonly code: 1; readonly retryAfterMs: number }
  | { readonly code: 2 };

export interface LimitScripts {
  admit(args: AdmitArgs): Promise<AdmitReply>;
  grant(key: string, bytesPerSecond: number, want: number): Promise<number>;
  renew(key: string, ttlMs: number, members: readonly string[]): Promise<number>;
  /** ZREM of one or more members of one sessions key. */
  release(key: string, members: readonly string[]): Promise<number>;
}

type Script = (...args: (string | number)[]) => Promise<unknown>;

const SCRIPTS = {
  socks4Admit: ADMIT_LUA,
  socks4Grant: GRANT_LUA,
  socks4Renew: RENEW_LUA,
} as const;

/** Registers the scripts on the client (EVALSHA, loaded on first use per connection). */
export function defineLimitScripts(client: RedisClient): LimitScripts {
  const commands = client as unknown as Record<string, Script | undefined>;
  for (const [name, lua] of Object.entries(SCRIPTS)) {
    if (commands[name] === undefined) client.defineCommand(name, { lua });
  }
  const call = (name: keyof typeof SCRIPTS, ...args: (string | number)[]): Promise<unknown> =>
    (commands[name] as Script).call(client, ...args);
  return {
    async admit({ rate, sessions, bandwidth }) {
      const named = [
        ['r', rate],
        ['s', sessions],
        ['b', bandwidth],
      ] as const;
      const present = named.filter(([, limit]) => limit !== null);
      const keys = present.map(([, limit]) => (limit as { key: string }).key);
      const layout = present.map(([letter]) => letter).join('');
      const reply = (await call(
        'socks4Admit',
        keys.length,
        ...keys,
        layout,
        rate?.perSecond ?? 0,
        rate?.burst ?? 0,
        sessions?.max ?? 0,
        sessions?.member ?? '',
        sessions?.ttlMs ?? 0,
        bandwidth?.bytesPerSecond ?? 0,
        bandwidth?.want ?? 0,
        ...(sessions?.releases ?? []),
      )) as [number, number];
      const [code, value] = reply;
      if (code === 0) return { code, granted: value };
      if (code === 1) return { code, retryAfterMs: value };
      return { code: 2 };
    },
    async grant(key, bytesPerSecond, want) {
      return Number(await call('socks4Grant', 1, key, bytesPerSecond, want));
    },
    async renew(key, ttlMs, members) {
      return Number(await call('socks4Renew', 1, key, ttlMs, ...members));
    },
    release(key, members) {
      return client.zrem(key, ...members);
    },
  };
}
