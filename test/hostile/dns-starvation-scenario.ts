// Scenario (inside network + mount namespaces, see namespace.ts): SOCKS4a names whose DNS never
// answers, against the real proxy CLI with default flags. /etc/resolv.conf names a fake DNS
// server on 127.0.0.1:53 (fake-dns.ts); /etc/hosts names hosts-only.hostile.test. Prints RESULT.
import { rmSync } from 'node:fs';
import net from 'node:net';
import { socks4Request, startEchoServer } from '../helpers/servers.ts';
import { startFakeDns } from './fake-dns.ts';
import { legitClient, metric, report, startProxyCli, waitFor } from './scenario-kit.ts';

const { names, sources } = JSON.parse(process.argv[2] ?? '{}') as { names: number; sources: number };

const dns = await startFakeDns({ 'ok.hostile.test': '127.0.0.1' });
const echo = await startEchoServer();
const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: dns, namespace: hostile}
spec:
  rules:
    - {name: names, action: Allow, commands: [Connect], to: {hosts: ["*.hostile.test"], cidrs: ["127.0.0.1/32"]}}
`;
const proxy = await startProxyCli(policy);
const inFlight = (): Promise<number | null> => metric(proxy.opsPort, 'socks4_dns_queries_in_flight');

function attack(
  count: number,
  sourceOf: (i: number) => string,
  prefix: string,
): Array<{ socket: net.Socket; reply: number | null }> {
  return Array.from({ length: count }, (_, i) => {
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port, localAddress: sourceOf(i) });
    const attacker = { socket, reply: null as number | null };
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => void (attacker.reply ??= chunk[1] ?? null));
    socket.on('connect', () =>
      socket.write(socks4Request(1, echo.port, '0.0.0.1', 'attacker', `silent-${prefix}${i}.hostile.test`)),
    );
    return attacker;
  });
}

try {
  const idle = {
    hosts: await legitClient(proxy.port, echo.port, { host: 'hosts-only.hostile.test' }),
    dns: await legitClient(proxy.port, echo.port, { host: 'ok.hostile.test' }),
  };

  // Many sources, many silent names; eight reaching the DNS server already pinned getaddrinfo's pool.
  const spread = attack(names, (i) => `127.0.20.${1 + (i % sources)}`, 'a');
  const askedMs = await waitFor(
    () => [...dns.received.keys()].filter((n) => n.startsWith('silent-a')).length >= Math.min(names, 8),
    20_000,
  );
  // Then every one of them in flight at once (the metric is absent where there is no such resolver).
  await waitFor(async () => (await inFlight()) === names, 5000);
  const during = {
    askedMs,
    inFlight: await inFlight(),
    hosts: await legitClient(proxy.port, echo.port, { host: 'hosts-only.hostile.test', timeoutMs: 20_000 }),
    dns: await legitClient(proxy.port, echo.port, { host: 'ok.hostile.test', timeoutMs: 20_000 }),
  };

  // The attackers hang up: their queries are cancelled at once, not left to time out.
  for (const a of spread) a.socket.destroy();
  const cancelledMs = await waitFor(async () => (await inFlight()) === 0, 4000);

  // One source asking for more names than its share: the excess is refused at once.
  const single = attack(200, () => '127.0.21.1', 'b');
  const singleSettledMs = await waitFor(async () => single.filter((a) => a.reply !== null).length >= 200 - 64, 20_000);
  const oneSource = {
    settledMs: singleSettledMs,
    refusedAtOnce: single.filter((a) => a.reply !== null).length,
    inFlight: await inFlight(),
    dns: await legitClient(proxy.port, echo.port, { host: 'ok.hostile.test', timeoutMs: 20_000 }),
  };
  for (const a of single) a.socket.destroy();
  const overloadLogged = /"reason":"DnsOverloaded"/.test(proxy.cli.output());
  report({ idle, during, cancelledMs, oneSource, overloadLogged });
} finally {
  await proxy.cli.stop('SIGKILL');
  rmSync(proxy.dir, { recursive: true, force: true });
  await echo.close();
  await dns.close();
}
