// A Report rule's limits are counted by the real limiters (in-process, and Redis fleet-wide) and
// recorded when they would have refused, but never refuse: every session here is served by the
// enforced policy behind it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { channels, type ReportRecord, type SessionInfo } from '../../src/telemetry/events.ts';
import { createMemoryLimiter } from '../../src/limits/memory-limiter.ts';
import { createRedisLimiter } from '../../src/limits/redis-limiter.ts';
import type { Limiter } from '../../src/limits/types.ts';
import { closeRedisClient, createRedisClient, waitForReady } from '../../src/redis/connection.ts';
import { limitKey } from '../../src/limits/redis-keys.ts';
import { exchange, socks4Request, startEchoServer, startProxy, type RawExchange } from '../helpers/servers.ts';
import { startRedis } from '../helpers/redis.ts';

const echo = await startEchoServer();
const redis = await startRedis();
after(async () => {
  await echo.close();
  await redis.stop();
});

const policy = (limits: string): string => `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: trial}
spec:
  priority: 10
  enforcement: Report
  rules:
    - {name: capped, action: Allow, to: {cidrs: ["127.0.0.1/32"]}, limits: ${limits}}
---
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: base}
spec:
  rules:
    - {name: loopback, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`;

/** Collects the report record of every session that ends, in the order they started. */
function recordReports(): { take(count: number): Promise<(ReportRecord | null)[]>; stop(): void } {
  const ended: SessionInfo[] = [];
  const onEnd = (message: unknown): void => void ended.push(message as SessionInfo);
  channels.sessionEnd.subscribe(onEnd);
  return {
    async take(count) {
      for (let i = 0; i < 200 && ended.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(ended.length, count, 'every session ended');
      return [...ended].sort((a, b) => a.startedAt - b.startedAt).map((s) => s.report ?? null);
    },
    stop: () => channels.sessionEnd.unsubscribe(onEnd),
  };
}

const outcome = (r: ReportRecord | null): string => (r === null ? 'none' : `${r.action} ${r.reason} ${r.reply}`);

interface Backend {
  name: string;
  open(prefix: string): Promise<{ limiter: Limiter; close(): Promise<void> }>;
}

const backends: Backend[] = [
  { name: 'in-process', open: async () => ({ limiter: createMemoryLimiter(), close: async () => {} }) },
  {
    name: 'Redis',
    async open(prefix) {
      const client = createRedisClient({ url: redis.url });
      assert.ok(await waitForReady(client, 5000));
      return {
        limiter: createRedisLimiter({ client, prefix, failMode: 'closed' }),
        close: () => closeRedisClient(client),
      };
    },
  },
];

for (const backend of backends) {
  test(`${backend.name} limiter: a Report rule's connection rate is counted, recorded, never refused`, async () => {
    const { limiter, close } = await backend.open('report-rate');
    const proxy = await startProxy(policy('{connectionRate: {perSecond: 1, burst: 2, key: SourceIP}}'), { limiter });
    const reports = recordReports();
    try {
      const replies: number[] = [];
      for (let i = 0; i < 4; i++) {
        const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1'));
        replies.push(reply[1] as number);
        raw.socket.destroy();
        await raw.closed;
      }
      assert.deepEqual(replies, [90, 90, 90, 90], 'the enforced policy serves every session');
      assert.deepEqual((await reports.take(4)).map(outcome), [
        'allow RuleAllowed 90',
        'allow RuleAllowed 90',
        'deny RateLimited 91',
        'deny RateLimited 91',
      ]);
    } finally {
      reports.stop();
      await proxy.close();
      await close();
    }
  });

  test(`${backend.name} limiter: a Report rule's concurrent sessions hold real slots, and a full count never refuses`, async () => {
    const prefix = 'report-sessions';
    const { limiter, close } = await backend.open(prefix);
    const proxy = await startProxy(policy('{concurrentSessions: {max: 2, key: Rule}}'), { limiter });
    const reports = recordReports();
    const held: RawExchange[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '127.0.0.1'));
        assert.equal(reply[1], 90, `session ${i + 1} is served`);
        held.push(raw);
      }
      if (backend.name === 'Redis') {
        // Counted fleet-wide: the Report rule's own lease set holds the two admitted sessions.
        const client = createRedisClient({ url: redis.url });
        try {
          assert.ok(await waitForReady(client, 5000));
          const key = limitKey(prefix, 'sessions', 'Rule', {
            ruleId: 'default/trial/capped',
            sourceIp: '',
            userId: '',
          });
          assert.equal(await client.zcard(key), 2);
        } finally {
          await closeRedisClient(client);
        }
      }
      for (const raw of held) {
        raw.socket.destroy();
        await raw.closed;
      }
      assert.deepEqual((await reports.take(3)).map(outcome), [
        'allow RuleAllowed 90',
        'allow RuleAllowed 90',
        'deny ConcurrencyLimited 91',
      ]);
    } finally {
      for (const raw of held) raw.socket.destroy();
      reports.stop();
      await proxy.close();
      await close();
    }
  });
}
