// The server-side scripts behind fleet-wide limits. One script decides every limit of a new
// session at once (one round trip), on Redis's clock so pods with skewed clocks agree. It checks
// all limits before writing any, so a refusal spends no rate token and takes no slot, the same
// rule the in-process limiter follows. All keys of one call share a hash tag (src/limits/redis-keys.ts),
// which is what makes a multi-key script legal on Redis Cluster.
import { createHash } from 'node:crypto';
import { Command } from 'ioredis';
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

// Admits a batch of sessions, in order, as if each were its own call: each sees what the ones
// before it wrote. Per session, KEYS holds its limit keys in the order its layout names them
// (r = rate, s = sessions, b = bandwidth) and ARGV holds 9 values and its carried releases:
// layout, perSecond, burst; max sessions, lease member, lease TTL ms; bytes per second, bytes
// wanted now; the count of members of its sessions key this pod released since its last call
// (their ZREM rides along instead of costing a command), then those members.
// Returns {code, value} per session, flattened: {0, bytes granted} | {1, retry after ms} (rate) |
// {2, 0} (concurrency) | {3, error text}: a session whose keys fail (a key of the wrong type)
// fails alone, as it did in a call of its own, not the sessions batched with it.
// Cheap on purpose (profiled: the script is most of Redis's CPU per session): one TIME per batch,
// the layout read with string.byte (no substrings), expired leases swept only when the count
// reaches the maximum (below it the dead members cannot change the answer, and at it the sweep
// keeps the set bounded by the maximum), and within a batch each rate key read once and written
// once, each sessions key counted once and its expiry pushed once.
const ADMIT_LUA = `${NOW_LUA}${TAKE_TOKENS_LUA}
local tats, tat_ttls, tat_keys = {}, {}, {}
local counts, lease_ttls, lease_keys = {}, {}, {}
local function admit_one(rate_key, sessions_key, bandwidth_key, a)
  local released = tonumber(ARGV[a + 9])
  if sessions_key and released > 0 then
    local removed = redis.call('ZREM', sessions_key, unpack(ARGV, a + 10, a + 9 + released))
    if counts[sessions_key] then counts[sessions_key] = counts[sessions_key] - removed end
  end
  local next_tat
  if rate_key then
    local interval = 1000 / tonumber(ARGV[a + 2])
    local tolerance = interval * math.max(1, tonumber(ARGV[a + 3]))
    local tat = tats[rate_key]
    if tat == nil then tat = tonumber(redis.call('GET', rate_key) or '0') or 0 end
    if tat < now then tat = now end
    next_tat = tat + interval
    local allow_at = next_tat - tolerance
    if allow_at - now > 0.000001 then return 1, math.ceil(allow_at - now - 0.000001) end
  end
  local ttl = tonumber(ARGV[a + 6])
  if sessions_key then
    -- Leases of crashed pods are simply expired members, swept when they could matter.
    local max = tonumber(ARGV[a + 4])
    local count = counts[sessions_key] or redis.call('ZCARD', sessions_key)
    if count >= max then
      redis.call('ZREMRANGEBYSCORE', sessions_key, '-inf', now)
      count = redis.call('ZCARD', sessions_key)
    end
    counts[sessions_key] = count
    if count >= max then return 2, 0 end
  end
  if rate_key then
    if tats[rate_key] == nil then tat_keys[#tat_keys + 1] = rate_key end
    -- Kept as the stored text reads back, so the next session sees what a separate call would.
    tats[rate_key] = tonumber(string.format('%.3f', next_tat))
    tat_ttls[rate_key] = math.ceil(next_tat - now) + 1000
  end
  if sessions_key then
    counts[sessions_key] = counts[sessions_key] + redis.call('ZADD', sessions_key, string.format('%.3f', now + ttl), ARGV[a + 5])
    if lease_ttls[sessions_key] == nil then lease_keys[#lease_keys + 1] = sessions_key end
    lease_ttls[sessions_key] = ttl
  end
  if bandwidth_key then return 0, take_tokens(bandwidth_key, tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8]), now) end
  return 0, 0
end
local replies = {}
local k, a = 0, 0
while a < #ARGV do
  local layout = ARGV[a + 1]
  local rate_key, sessions_key, bandwidth_key
  for i = 1, #layout do
    local c = string.byte(layout, i)
    if c == 114 then rate_key = KEYS[k + i] elseif c == 115 then sessions_key = KEYS[k + i] else bandwidth_key = KEYS[k + i] end
  end
  local ok, code, value = pcall(admit_one, rate_key, sessions_key, bandwidth_key, a)
  if not ok then code, value = 3, type(code) == 'table' and (code.err or 'script error') or tostring(code) end
  replies[#replies + 1] = code
  replies[#replies + 1] = value
  k = k + #layout
  a = a + 9 + tonumber(ARGV[a + 9])
end
for _, key in ipairs(tat_keys) do
  redis.call('SET', key, string.format('%.3f', tats[key]), 'PX', tat_ttls[key])
end
for _, key in ipairs(lease_keys) do redis.call('PEXPIRE', key, lease_ttls[key] * 2) end
return replies
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
  | { readonly code: 2 }
  | { readonly code: 3; readonly error: string };

export interface LimitScripts {
  /** Admits sessions in order, in one call: their keys must share a slot on Redis Cluster. */
  admit(batch: readonly AdmitArgs[]): Promise<AdmitReply[]>;
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

const ADMIT_SHA = createHash('sha1').update(ADMIT_LUA).digest('hex');

/** One batch's KEYS and ARGV (see ADMIT_LUA). */
export function admitArguments(batch: readonly AdmitArgs[]): (string | number)[] {
  const keys: string[] = [];
  const argv: (string | number)[] = [];
  for (const { rate, sessions, bandwidth } of batch) {
    let layout = '';
    if (rate !== null) {
      layout += 'r';
      keys.push(rate.key);
    }
    if (sessions !== null) {
      layout += 's';
      keys.push(sessions.key);
    }
    if (bandwidth !== null) {
      layout += 'b';
      keys.push(bandwidth.key);
    }
    const released = sessions?.releases ?? [];
    argv.push(
      layout,
      rate?.perSecond ?? 0,
      rate?.burst ?? 0,
      sessions?.max ?? 0,
      sessions?.member ?? '',
      sessions?.ttlMs ?? 0,
      bandwidth?.bytesPerSecond ?? 0,
      bandwidth?.want ?? 0,
      released.length,
      ...released,
    );
  }
  return [keys.length, ...keys, ...argv];
}

function toReplies(flat: unknown): AdmitReply[] {
  const values = flat as (number | string)[];
  const replies: AdmitReply[] = [];
  for (let i = 0; i < values.length; i += 2) {
    const code = values[i];
    const value = values[i + 1] as number;
    if (code === 0) replies.push({ code, granted: value });
    else if (code === 1) replies.push({ code, retryAfterMs: value });
    else if (code === 2) replies.push({ code });
    else replies.push({ code: 3, error: String(value) });
  }
  return replies;
}

/** Registers the scripts on the client (EVALSHA, loaded on first use per connection). */
export function defineLimitScripts(client: RedisClient): LimitScripts {
  const commands = client as unknown as Record<string, Script | undefined>;
  for (const [name, lua] of Object.entries(SCRIPTS)) {
    if (commands[name] === undefined) client.defineCommand(name, { lua });
  }
  const call = (name: keyof typeof SCRIPTS, ...args: (string | number)[]): Promise<unknown> =>
    (commands[name] as Script).call(client, ...args);
  // On a single Redis the admission script goes out as a command of its own, not through
  // ioredis's auto-pipeline or its script wrapper: the batch already is the pipeline (profiled:
  // per command, the auto-pipeline and the wrapper cost three promises, a pipeline object and a
  // callback queue). On Cluster a batch holds one rule's sessions, so the auto-pipeline still
  // earns its keep: the batches of the rules one node serves share a write (measured below
  // bench/admission.ts's 64 rules: one write per batch cost a third of the sessions/s at K = 1).
  const send = (name: 'evalsha' | 'eval', args: (string | number)[]): Promise<unknown> => {
    const command = new Command(name, args, { replyEncoding: 'utf8' });
    client.sendCommand(command);
    return command.promise;
  };
  return {
    async admit(batch) {
      const args = admitArguments(batch);
      if (client.isCluster) return toReplies(await call('socks4Admit', ...args));
      try {
        return toReplies(await send('evalsha', [ADMIT_SHA, ...args]));
      } catch (error) {
        // A connection (or a restarted Redis) that has not seen the script yet: nothing ran.
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return toReplies(await send('eval', [ADMIT_LUA, ...args]));
      }
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
