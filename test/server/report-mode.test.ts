// Report mode end to end, as a team rolls a policy out: the real `socks4-fleet proxy` process,
// curl as the client, a Report Deny in front of the allowing policy. The session goes through and
// the would-be refusal shows in the session's log line, the Prometheus counter and the session
// span; the one-word edit to Enforce (the file source reloads it) then refuses the same request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startHttpServer } from '../helpers/servers.ts';
import { freePort, startCli } from '../helpers/spawn.ts';
import { attr, receivedSpans, startOtlpReceiver } from '../telemetry/otlp-receiver.ts';

const policy = (enforcement: string, webPort: number): string => `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: trial}
spec:
  priority: 10
  enforcement: ${enforcement}
  rules:
    - {name: no-web, action: Deny, to: {ports: ["${webPort}"]}}
---
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: base}
spec:
  priority: 100
  rules:
    - {name: loopback, action: Allow, to: {cidrs: ["127.0.0.1/32"]}}
`;

/** curl through the proxy; resolves with curl's exit code and body, never rejects. */
function curlSocks4(proxyPort: number, url: string): Promise<{ code: number; body: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', '--socks4', `127.0.0.1:${proxyPort}`, url], (error, stdout) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, body: stdout });
    });
  });
}

type LogLine = Record<string, unknown> & { msg?: string; report?: Record<string, unknown> };
const logLines = (output: string): LogLine[] =>
  output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

test('a matching Report Deny lets the session through and is recorded; switched to Enforce it refuses', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'socks4-report-'));
  const policyFile = path.join(dir, 'policy.yaml');
  const web = await startHttpServer('through the proxy\n');
  await writeFile(policyFile, policy('Report', web.port));
  const receiver = await startOtlpReceiver();
  const port = await freePort();
  const cli = startCli(
    ['proxy', '--listen', `127.0.0.1:${port}`, '--ops-listen', '127.0.0.1:0', '--policy-file', policyFile],
    {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_TRACES_SAMPLER: 'always_on',
      OTEL_NODE_RESOURCE_DETECTORS: 'env',
      OTEL_LOG_LEVEL: 'warn',
    },
  );
  try {
    await cli.waitForOutput(/proxy listening/);
    const listening = logLines(cli.output()).find((l) => String(l.msg).includes('proxy listening')) as { ops: string };
    const opsPort = Number(listening.ops.slice(listening.ops.lastIndexOf(':') + 1));

    // Report: the request goes through; what the Report policy would have done is recorded.
    const reported = await curlSocks4(port, `http://127.0.0.1:${web.port}/`);
    assert.deepEqual(reported, { code: 0, body: 'through the proxy\n' }, cli.output());
    await cli.waitForOutput(/"msg":"session closed"/);
    const closed = logLines(cli.output()).find((l) => l.msg === 'session closed') as LogLine;
    assert.equal(closed.rule, 'default/base/loopback');
    assert.equal(closed.reply, 90);
    assert.deepEqual(closed.report, {
      ruleId: 'default/trial/no-web',
      policy: 'default/trial',
      action: 'deny',
      reason: 'RuleDenied',
      reply: 91,
    });

    const metrics = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
    assert.match(metrics, /^socks4_report_decisions_total\{action="deny",reason="RuleDenied"\} 1$/m);
    assert.match(metrics, /^socks4_sessions_total\{command="connect",reply="90",reason=""\} 1$/m);

    // The one-word edit. Written beside and renamed over, as editors and ConfigMaps do.
    await writeFile(`${policyFile}.new`, policy('Enforce', web.port));
    await rename(`${policyFile}.new`, policyFile);
    await cli.waitForOutput(/rules snapshot loaded[\s\S]*rules snapshot loaded/);
    const enforced = await curlSocks4(port, `http://127.0.0.1:${web.port}/`);
    assert.notEqual(enforced.code, 0, 'curl reports the refusal');
    assert.equal(enforced.body, '');
    await cli.waitForOutput(/"msg":"session refused"/);
    const refused = logLines(cli.output()).find((l) => l.msg === 'session refused') as LogLine;
    assert.deepEqual(
      [refused.rule, refused.reply, refused.reason, refused.report],
      ['default/trial/no-web', 91, 'RuleDenied', undefined],
    );

    assert.equal(await cli.stop('SIGTERM'), 0, cli.output());
    const sessions = receivedSpans(receiver.received).filter((s) => s.name === 'socks4 CONNECT');
    assert.equal(sessions.length, 2);
    const [through, refusedSpan] = [...sessions].sort(
      (a, b) => Number(attr(a.attributes, 'socks4.reply.code')) - Number(attr(b.attributes, 'socks4.reply.code')),
    );
    const reportAttrs = (s: (typeof sessions)[number]): unknown[] =>
      [
        'socks4.report.rule.id',
        'socks4.report.policy',
        'socks4.report.action',
        'socks4.report.reason',
        'socks4.report.reply.code',
      ].map((k) => attr(s.attributes, k));
    assert.deepEqual(reportAttrs(through!), ['default/trial/no-web', 'default/trial', 'deny', 'RuleDenied', 91]);
    assert.equal(attr(through!.attributes, 'socks4.rule.id'), 'default/base/loopback');
    assert.deepEqual(reportAttrs(refusedSpan!), [undefined, undefined, undefined, undefined, undefined]);
    assert.equal(attr(refusedSpan!.attributes, 'socks4.rule.id'), 'default/trial/no-web');
  } finally {
    await cli.stop('SIGKILL');
    await web.close();
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  }
});
