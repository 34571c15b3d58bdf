// Attack 3 of issue #12: an identd that accepts and never answers (a firewall dropping port 113
// does the same). The handshake deadline used to run through the ident query, both 10 s, so
// Required got 91 (HandshakeTimeout) instead of 92 and Optional was refused instead of allowed.
// Real proxy CLI with default timeouts; a real identd-like TCP server that accepts and is silent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { startEchoServer } from '../helpers/servers.ts';
import { SILENT, startIdentd } from '../helpers/identd.ts';
import { legitClient, startProxyCli } from './scenario-kit.ts';

const IDENT_TIMEOUT_MS = 10_000; // the default --ident-timeout
const SLACK_MS = 3000; // a shared 2-core machine

test('silent identd with default deadlines: Required gets 92, Optional is allowed, ident Off is untouched', async (t) => {
  const echo = await startEchoServer();
  const identd = await startIdentd({ respond: () => SILENT });
  const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: ident, namespace: hostile}
spec:
  rules:
    - {name: required, action: Allow, from: {userids: ["req"]}, to: {cidrs: ["127.0.0.1/32"]}, ident: Required}
    - {name: optional, action: Allow, from: {userids: ["opt"]}, to: {cidrs: ["127.0.0.1/32"]}, ident: Optional}
    - {name: plain, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`;
  const proxy = await startProxyCli(policy, ['--ident-port', String(identd.port)]);
  try {
    const [required, optional, plain] = await Promise.all([
      legitClient(proxy.port, echo.port, { userId: 'req', timeoutMs: 30_000 }),
      legitClient(proxy.port, echo.port, { userId: 'opt', timeoutMs: 30_000 }),
      // The legitimate client whose rule needs no ident, asked while the other two wait on it.
      new Promise((resolve) => setTimeout(resolve, 200)).then(() =>
        legitClient(proxy.port, echo.port, { userId: 'plain' }),
      ),
    ]);
    t.diagnostic(JSON.stringify({ required, optional, plain, identQueries: identd.queries.length }));
    assert.ok(identd.queries.length >= 2, 'the identd was asked');
    assert.equal(required.reply, 92, 'Required with an identd that never answers is 92, not a handshake timeout');
    assert.equal(optional.reply, 90, 'Optional with an identd that never answers is allowed');
    for (const r of [required, optional]) {
      assert.ok(r.ms >= IDENT_TIMEOUT_MS - 500 && r.ms < IDENT_TIMEOUT_MS + SLACK_MS, `decided after ${r.ms} ms`);
    }
    assert.equal(plain.reply, 90);
    assert.ok(plain.ms < 1000, `a client without ident took ${plain.ms} ms`);
  } finally {
    await proxy.cli.stop('SIGKILL');
    await rm(proxy.dir, { recursive: true, force: true });
    await identd.close();
    await echo.close();
  }
});
