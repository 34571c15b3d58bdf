// The real `socks4-fleet proxy` process with OTEL_* variables: its session spans and the first
// snapshot's enforce span reach an OTLP receiver, and SIGTERM (drain) flushes them before exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exchange, socks4Request, startEchoServer } from '../helpers/servers.ts';
import { freePort, startCli } from '../helpers/spawn.ts';
import { attr, receivedSpans, startOtlpReceiver } from './otlp-receiver.ts';

test('proxy CLI: traces configured by OTEL_* only, flushed on drain', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'socks4-tracing-'));
  const policyFile = path.join(dir, 'policy.yaml');
  await writeFile(
    policyFile,
    `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: local}
spec:
  rules:
    - {name: loopback, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`,
  );
  const receiver = await startOtlpReceiver();
  const echo = await startEchoServer();
  const port = await freePort();
  const cli = startCli(
    [
      'proxy',
      '--listen',
      `127.0.0.1:${port}`,
      '--ops-listen',
      '127.0.0.1:0',
      '--policy-file',
      policyFile,
      '--redact-userids',
    ],
    {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_TRACES_SAMPLER: 'parentbased_always_on',
      OTEL_NODE_RESOURCE_DETECTORS: 'env',
      OTEL_LOG_LEVEL: 'warn',
    },
  );
  try {
    await cli.waitForOutput(/proxy listening/);
    const { reply, raw } = await exchange(port, socks4Request(1, echo.port, '127.0.0.1', 'dave'));
    assert.equal(reply[1], 90);
    raw.socket.end();
    await raw.closed;
    assert.equal(await cli.stop('SIGTERM'), 0, cli.output());
    const spans = receivedSpans(receiver.received);
    const names = spans.map((s) => s.name).sort();
    assert.deepEqual(names, ['socks4 CONNECT', 'socks4 snapshot enforce', 'socks4 upstream connect'], cli.output());
    const session = spans.find((s) => s.name === 'socks4 CONNECT')!;
    assert.equal(attr(session.resource, 'service.name'), 'socks4-fleet-proxy');
    assert.equal(attr(session.attributes, 'socks4.rule.id'), 'default/local/loopback');
    assert.equal(attr(session.attributes, 'socks4.userid'), undefined, '--redact-userids applies to traces');
    const enforce = spans.find((s) => s.name === 'socks4 snapshot enforce')!;
    assert.match(String(attr(enforce.attributes, 'socks4.snapshot.version')), /^[0-9a-f]{12}$/);
  } finally {
    await cli.stop('SIGKILL');
    await echo.close();
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  }
});
