// Attack 5 of issue #12 (an operator's large reload, or anyone who can write the file): a
// 10 000-rule policy file reloaded on the main thread stalled every session for 2-3 s. The
// file is now read, parsed and validated in a worker thread (src/rules/policy-file.ts). Real
// proxy CLI: a legitimate client makes exchange after exchange while the file is reloaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { MAX_POLICY_FILE_BYTES } from '../../src/rules/policy-file.ts';
import { startEchoServer } from '../helpers/servers.ts';
import { runCli } from '../helpers/spawn.ts';
import { legitClient, startProxyCli, type LegitResult } from './scenario-kit.ts';

// Bounds for a 2-core machine shared with other test runs, where an idle process already sees
// ~100 ms scheduling gaps: 99% of exchanges during the reload within 500 ms of the idle median,
// and none over 2 s. Before the worker thread, every exchange in a reload waited 3-20 s.
const P99_ADDED_BOUND_MS = 500;
const MAX_BOUND_MS = 2000;

/** 100 policies of 100 tenant rules each, after one that allows the legitimate client. */
function bigPolicy(echoPort: number): string {
  let text = `---\n{apiVersion: socks4-fleet.io/v1alpha1, kind: Socks4Policy, metadata: {name: legit, namespace: big}, spec: {priority: 1, rules: [{name: legit, action: Allow, from: {userids: [legit]}, to: {cidrs: ["127.0.0.1/32"], ports: ["${echoPort}"]}}]}}\n`;
  for (let p = 0; p < 100; p++) {
    text += `---\napiVersion: socks4-fleet.io/v1alpha1\nkind: Socks4Policy\nmetadata: {name: team-${p}, namespace: big}\nspec:\n  priority: ${100 + p}\n  rules:\n`;
    for (let r = 0; r < 100; r++) {
      const t = p * 100 + r;
      text += `    - {name: tenant-${t}, action: Allow, commands: [Connect], from: {cidrs: ["10.${(t >> 8) & 255}.${t & 255}.0/24"], userids: ["svc-${t}", "svc-${t}-*"]}, to: {hosts: ["*.t${t}.example.com"], ports: ["443", "8000-8999"]}, limits: {connectionRate: {perSecond: 10, burst: 20, key: SourceIP}}}\n`;
    }
  }
  return text;
}

test("reloading a 10 000-rule policy file adds little to a legitimate client's latency", async (t) => {
  const echo = await startEchoServer();
  const proxy = await startProxyCli(bigPolicy(echo.port));
  const file = `${proxy.dir}/policy.yaml`;
  try {
    const probe = async (until: () => boolean, limit: number): Promise<LegitResult[]> => {
      const results: LegitResult[] = [];
      while (!until() && results.length < limit)
        results.push(await legitClient(proxy.port, echo.port, { timeoutMs: 20_000 }));
      return results;
    };
    await probe(() => false, 20); // warm
    const idle = await probe(() => false, 40);
    const loads = (): number => proxy.cli.output().split('rules snapshot loaded').length - 1;
    const before = loads();
    const started = performance.now();
    await appendFile(file, `# reload ${Date.now()}\n`); // a new version: the whole file again
    const during = await probe(() => loads() > before || performance.now() - started > 120_000, 100_000);
    const reloadMs = Math.round(performance.now() - started);
    const sorted = (r: LegitResult[]): number[] => r.map((x) => x.ms).sort((a, b) => a - b);
    const idleP50 = sorted(idle)[Math.floor(idle.length / 2)]!;
    const duringMax = Math.max(...during.map((r) => r.ms));
    const duringP99 = sorted(during)[Math.floor(during.length * 0.99)]!;
    t.diagnostic(
      JSON.stringify({
        reloadMs,
        idleP50Ms: idleP50,
        idleMaxMs: Math.max(...idle.map((r) => r.ms)),
        exchangesDuringReload: during.length,
        duringP99Ms: duringP99,
        duringMaxMs: duringMax,
        addedMs: Math.round(duringMax - idleP50),
      }),
    );
    assert.ok(loads() > before, 'the reload never happened');
    assert.ok(during.length >= 5, `only ${during.length} exchanges during the reload: the loop was stalled`);
    for (const r of during) assert.equal(r.reply, 90);
    assert.ok(
      duringP99 - idleP50 < P99_ADDED_BOUND_MS,
      `a reload added ${Math.round(duringP99 - idleP50)} ms to 1% of exchanges`,
    );
    assert.ok(duringMax < MAX_BOUND_MS, `an exchange took ${duringMax} ms during the reload`);
  } finally {
    await proxy.cli.stop('SIGKILL');
    await rm(proxy.dir, { recursive: true, force: true });
    await echo.close();
  }
});

test('a policy file over the size cap is refused unread, with the limit named', async () => {
  const echo = await startEchoServer();
  const proxy = await startProxyCli(
    bigPolicy(echo.port)
      .slice(0, 2000)
      .replace(/---\napiVersion[\s\S]*$/, ''),
  );
  const file = `${proxy.dir}/policy.yaml`;
  try {
    // A reload to an oversized file keeps the rules in force and says why.
    await appendFile(file, `#${'x'.repeat(MAX_POLICY_FILE_BYTES)}\n`);
    await proxy.cli.waitForOutput(/larger than the 8388608-byte limit for a policy file/);
    const legit = await legitClient(proxy.port, echo.port);
    assert.equal(legit.reply, 90, 'the previous rules stay in force');
    // At start: one line naming the file and the limit, exit 1.
    const { code, output } = await runCli([
      'proxy',
      '--listen',
      '127.0.0.1:0',
      '--ops-listen',
      '127.0.0.1:0',
      '--policy-file',
      file,
    ]);
    assert.equal(code, 1);
    assert.match(output, /larger than the 8388608-byte limit for a policy file/);
    assert.doesNotMatch(output, /\n\s+at /, 'no stack trace');
    const validate = await runCli(['policy', 'validate', file]);
    assert.equal(validate.code, 1, validate.output);
    assert.match(validate.output, /policy\.yaml: \d+ bytes, larger than the 8388608-byte limit for a policy file/);
  } finally {
    await proxy.cli.stop('SIGKILL');
    await rm(proxy.dir, { recursive: true, force: true });
    await echo.close();
  }
});
