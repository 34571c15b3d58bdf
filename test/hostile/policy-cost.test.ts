// Attack 4 of issue #12: a valid policy whose globs make one decision expensive. 1000 USERID
// globs like `*aaaa…b*` against a 255-byte USERID cost half a second of event loop a decision.
// Validation now bounds the matching work per policy and per set (src/policy/match-cost.ts):
// that policy is refused, and the most expensive set it accepts, attacked with 255-byte USERIDs
// through the real proxy CLI, still serves a legitimate client within the bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { globCost, MAX_MATCH_COST_PER_POLICY, MAX_MATCH_COST_PER_SET } from '../../src/policy/match-cost.ts';
import { socks4Request, startEchoServer } from '../helpers/servers.ts';
import { runCli } from '../helpers/spawn.ts';
import { legitClient, startProxyCli, type LegitResult } from './scenario-kit.ts';

const LEGIT_BOUND_MS = 1500; // ten decisions of ~11 ms queued ahead, on a shared 2-core machine
const ATTACKERS = 10; // requests kept in flight at once, each re-sent as soon as it is refused
const ATTACK_MS = 3000;

const doc = (name: string, priority: number, rules: unknown[]): string =>
  `---\n${JSON.stringify({ apiVersion: 'socks4-fleet.io/v1alpha1', kind: 'Socks4Policy', metadata: { name, namespace: 'hostile' }, spec: { priority, rules } })}\n`;

test("the issue's policy (1000 globs *aaaa…b*) is refused with the budget named", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'socks4-cost-'));
  try {
    const file = path.join(dir, 'costly.yaml');
    const globs = Array.from({ length: 1000 }, () => `*${'a'.repeat(250)}b*`);
    await writeFile(file, doc('costly', 100, [{ name: 'costly', action: 'Allow', from: { userids: globs } }]));
    const { code, output } = await runCli(['policy', 'validate', file]);
    assert.notEqual(code, 0, output);
    assert.match(
      output,
      /hostile\/costly: spec\.rules: its globs may cost 515000 comparisons a decision, at most 250000 are allowed/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the most expensive policy set validation accepts, attacked with 255-byte USERIDs, serves a legitimate client', async (t) => {
  const echo = await startEchoServer();
  // Short segments without '?' cost the most time per unit of budget (bench/policy-worst-case.ts).
  const glob = '*aaab*';
  const perPolicy = Math.floor(MAX_MATCH_COST_PER_POLICY / globCost(glob));
  const policies = Math.floor(MAX_MATCH_COST_PER_SET / MAX_MATCH_COST_PER_POLICY);
  const text = [
    doc('legit', 1, [
      {
        name: 'legit',
        action: 'Allow',
        from: { userids: ['legit'] },
        to: { cidrs: ['127.0.0.1/32'], ports: [String(echo.port)] },
      },
    ]),
    ...Array.from({ length: policies }, (_, i) =>
      doc(`costly-${i}`, 100 + i, [
        {
          name: 'costly',
          action: 'Allow',
          from: { userids: Array.from({ length: perPolicy }, () => glob) },
          to: { cidrs: ['127.0.0.1/32'] },
        },
      ]),
    ),
  ].join('');
  const proxy = await startProxyCli(text);
  try {
    const idle = await legitClient(proxy.port, echo.port);
    let stop = false;
    let decided = 0;
    const attacker = async (i: number): Promise<void> => {
      while (!stop) {
        const socket = net.connect({ host: '127.0.0.1', port: proxy.port, localAddress: `127.0.30.${1 + i}` });
        socket.on('error', () => {});
        socket.resume(); // read the 91, so the FIN after it is seen and the socket closes
        socket.on('connect', () => socket.write(socks4Request(1, echo.port, '127.0.0.1', 'a'.repeat(255))));
        await new Promise((resolve) => socket.once('close', resolve));
        decided++;
      }
    };
    const attack = Array.from({ length: ATTACKERS }, (_, i) => attacker(i));
    await new Promise((resolve) => setTimeout(resolve, 500)); // the attack under way
    const during: LegitResult[] = [];
    const until = Date.now() + ATTACK_MS;
    while (Date.now() < until) during.push(await legitClient(proxy.port, echo.port, { timeoutMs: 20_000 }));
    stop = true;
    await Promise.all(attack);
    const worst = Math.max(...during.map((r) => r.ms));
    t.diagnostic(
      JSON.stringify({
        globsPerPolicy: perPolicy,
        policies,
        idleMs: idle.ms,
        legitTries: during.length,
        legitWorstMs: worst,
        attackDecisions: decided,
      }),
    );
    assert.ok(decided > ATTACKERS * 5, `only ${decided} attacking decisions: the attack tested nothing`);
    for (const r of during) assert.equal(r.reply, 90);
    assert.ok(worst < LEGIT_BOUND_MS, `a legitimate client took ${worst} ms during the attack`);
  } finally {
    await proxy.cli.stop('SIGKILL');
    await rm(proxy.dir, { recursive: true, force: true });
    await echo.close();
  }
});
