// SOCKS4a names through a real listener: converted once, and the canonical form is what the
// policy matches, the resolver is asked for and the session reports; addresses spelled as names
// never reach the resolver; names that are not host names are refused with their own reason.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import {
  exchange,
  loopbackOnlyDial,
  socks4Request,
  startEchoServer,
  startProxy,
  type TestProxy,
} from '../helpers/servers.ts';

const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: names, namespace: test}
spec:
  rules:
    - {name: no-example, action: Deny, to: {hosts: ["example.com", "*.bücher.example"]}}
    - {name: loopback, action: Allow, to: {hosts: ["*"], cidrs: ["127.0.0.0/8"]}}
    - {name: web, action: Allow, to: {hosts: ["*"]}}
`;

const asked: string[] = [];
const ended: SessionInfo[] = [];
const onEnd = (m: unknown): void => void ended.push(m as SessionInfo);
const escaped: string[] = [];
let proxy: TestProxy;
let echo: Awaited<ReturnType<typeof startEchoServer>>;

before(async () => {
  channels.sessionEnd.subscribe(onEnd);
  echo = await startEchoServer('127.0.0.1');
  proxy = await startProxy(policy, {
    resolve: async (name) => {
      asked.push(name);
      return '127.0.0.1';
    },
    dial: loopbackOnlyDial(escaped),
  });
});

after(async () => {
  channels.sessionEnd.unsubscribe(onEnd);
  await proxy.close();
  await echo.close();
});

/** Sends one SOCKS4a CONNECT for `host`; returns the reply code and the session as it ended. */
async function request(host: string): Promise<{ code: number; session: SessionInfo }> {
  const before = ended.length;
  const { reply, raw } = await exchange(proxy.port, socks4Request(1, echo.port, '0.0.0.1', 'u', host));
  raw.socket.destroy();
  for (let i = 0; i < 200 && ended.length === before; i++) await new Promise((r) => setTimeout(r, 10));
  return { code: reply[1] ?? -1, session: ended[ended.length - 1]! };
}

describe('canonical SOCKS4a names through the proxy', () => {
  it('refuses every look-alike of a denied name by the Deny rule, without asking DNS, and logs the ASCII name', async () => {
    for (const host of [
      'ＥＸＡＭＰＬＥ.com',
      'exam\u00adple.com',
      'exam\u200bple.com',
      '𝐞𝐱𝐚𝐦𝐩𝐥𝐞.com',
      'EXAMPLE.com.',
      'www.BÜCHER.example',
    ]) {
      asked.length = 0;
      const { code, session } = await request(host);
      assert.equal(code, 91, host);
      assert.equal(session.reason, 'RuleDenied', host);
      assert.equal(session.ruleId, 'test/names/no-example', host);
      assert.match(session.host ?? '', /^(example\.com|www\.xn--bcher-kva\.example)$/, host);
      assert.deepEqual(asked, [], host);
    }
  });

  it('resolves the canonical form of an allowed name and serves it', async () => {
    asked.length = 0;
    const { code, session } = await request('Ｌｏｃａｌ.Test');
    assert.equal(code, 90);
    assert.deepEqual(asked, ['local.test']);
    assert.equal(session.host, 'local.test');
  });

  it('checks names spelled as addresses as those addresses, before any DNS', async () => {
    asked.length = 0;
    for (const host of ['2130706433', '0x7f.1', '127.1']) {
      const { code, session } = await request(host);
      assert.equal(code, 90, host); // the loopback rule names 127.0.0.0/8
      assert.equal(session.destIp, '127.0.0.1', host);
      assert.equal(session.host, '127.0.0.1', host);
    }
    const mapped = await request('::ffff:10.0.0.1');
    assert.equal(mapped.code, 91);
    assert.equal(mapped.session.reason, 'GuardedDestination');
    assert.equal(mapped.session.guard, 'private');
    assert.deepEqual(asked, []);
    assert.deepEqual(escaped, []);
  });

  it('refuses names that are not host names with InvalidHostname', async () => {
    asked.length = 0;
    for (const host of ['a b.com', 'exa\tmple.com', 'a..b', 'evil.com/x', 'foo.123', '::1', `${'a'.repeat(64)}.com`]) {
      const { code, session } = await request(host);
      assert.equal(code, 91, JSON.stringify(host));
      assert.equal(session.reason, 'InvalidHostname', JSON.stringify(host));
    }
    assert.deepEqual(asked, []);
  });
});
