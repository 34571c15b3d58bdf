// Attack 2 of issue #12: SOCKS4a names whose DNS never answers. With dns.lookup (getaddrinfo on
// libuv's 4 threads) eight of them pinned the pool, and every other name — even one in
// /etc/hosts — waited out the 10 s handshake deadline and got 91. Real proxy CLI, default flags,
// in network + mount namespaces with a bind-mounted /etc/resolv.conf and a fake DNS server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNamespace } from './namespace.ts';
import type { LegitResult } from './scenario-kit.ts';

const scenario = fileURLToPath(new URL('./dns-starvation-scenario.ts', import.meta.url));
const LEGIT_BOUND_MS = 2000;

interface Result {
  idle: { hosts: LegitResult; dns: LegitResult };
  during: { askedMs: number | null; inFlight: number | null; hosts: LegitResult; dns: LegitResult };
  cancelledMs: number | null;
  oneSource: { settledMs: number | null; refusedAtOnce: number; inFlight: number | null; dns: LegitResult };
  overloadLogged: boolean;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'socks4-dns-'));
  await writeFile(path.join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  await writeFile(path.join(dir, 'hosts'), '127.0.0.1 localhost\n127.0.0.1 hosts-only.hostile.test\n');
});
after(() => rm(dir, { recursive: true, force: true }));

test('names whose DNS never answers starve nobody: /etc/hosts and DNS names are served during the attack', async (t) => {
  const { result } = await runInNamespace<Result>(
    scenario,
    { names: 64, sources: 32 },
    {
      mounts: { '/etc/resolv.conf': path.join(dir, 'resolv.conf'), '/etc/hosts': path.join(dir, 'hosts') },
      timeoutMs: 150_000,
    },
  );
  t.diagnostic(JSON.stringify(result));
  assert.equal(result.idle.hosts.reply, 90);
  assert.equal(result.idle.dns.reply, 90);

  const { during } = result;
  for (const [name, legit] of [
    ['/etc/hosts', during.hosts],
    ['DNS', during.dns],
  ] as const) {
    assert.equal(legit.reply, 90, `a ${name} name was refused during the attack`);
    assert.ok(legit.ms < LEGIT_BOUND_MS, `a ${name} name took ${legit.ms} ms during the attack`);
  }
  assert.notEqual(during.askedMs, null, 'the silent names never reached the DNS server together');
  assert.equal(during.inFlight, 64, 'every silent name is in flight at once (none queued behind another)');

  // The attackers hung up: their queries were cancelled, not left to their 5 s deadline.
  assert.notEqual(result.cancelledMs, null, 'queries stayed in flight after their sessions ended');
  assert.ok(result.cancelledMs! < 2000);

  // One source: at most its share (0.25 of 256) in flight, the rest refused at once.
  const { oneSource } = result;
  assert.equal(oneSource.inFlight, 64);
  assert.ok(oneSource.refusedAtOnce >= 136, `${oneSource.refusedAtOnce} refused`);
  assert.ok(result.overloadLogged, 'refusals over the cap are logged with reason DnsOverloaded');
  assert.equal(oneSource.dns.reply, 90);
  assert.ok(oneSource.dns.ms < LEGIT_BOUND_MS, `a DNS name took ${oneSource.dns.ms} ms`);
});
