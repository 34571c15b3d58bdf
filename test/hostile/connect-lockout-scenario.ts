// Scenario (inside a namespace, see namespace.ts): CONNECT floods to a destination that drops
// SYNs, against the real proxy CLI with default flags. Prints RESULT <json>.
//   hold:     1100 attackers from 200 addresses each ask for the black hole and stay connected;
//   hang-up:  they all go away (half with FIN, half with RST);
//   one-source: 600 attackers from one address.
// A legitimate client from 127.0.0.1 is timed in each phase.
import { rmSync } from 'node:fs';
import net from 'node:net';
import { startEchoServer, socks4Request } from '../helpers/servers.ts';
import { BLACK_HOLE } from './namespace.ts';
import { legitClient, metric, readyz, report, startProxyCli, synSent, waitFor } from './scenario-kit.ts';

const { attackers, sources } = JSON.parse(process.argv[2] ?? '{}') as { attackers: number; sources: number };

const echo = await startEchoServer();
const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: lockout, namespace: hostile}
spec:
  rules:
    - {name: echo, action: Allow, commands: [Connect], to: {cidrs: ["127.0.0.1/32"], ports: ["${echo.port}"]}}
    - {name: black-hole, action: Allow, commands: [Connect], to: {cidrs: ["10.77.0.0/24"], ports: ["80"]}}
`;
const proxy = await startProxyCli(policy); // default flags: 1000 pending slots, 2-minute connect timeout

interface Attacker {
  socket: net.Socket;
  reply: number | null;
}

function attack(count: number, sourceOf: (i: number) => string): Attacker[] {
  const list: Attacker[] = [];
  for (let i = 0; i < count; i++) {
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port, localAddress: sourceOf(i) });
    const attacker: Attacker = { socket, reply: null };
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => void (attacker.reply ??= chunk[1] ?? null));
    socket.on('connect', () => socket.write(socks4Request(1, 80, BLACK_HOLE, 'attacker')));
    list.push(attacker);
  }
  return list;
}

const repliedCount = (list: Attacker[]): number => list.filter((a) => a.reply !== null).length;

try {
  const idle = await legitClient(proxy.port, echo.port);

  // Hold: more attackers than the pool; the proxy's answer settles once the last request is in.
  const spread = (i: number): string => `127.0.${10 + (Math.floor(i / 250) % 200)}.${1 + (i % Math.min(250, sources))}`;
  const held = attack(attackers, (i) => spread(i % sources));
  const holdSettledMs = await waitFor(
    () => repliedCount(held) >= attackers - 1000 && held.every((a) => a.socket.bytesWritten > 0),
    30_000,
  );
  const duringHold = {
    settledMs: holdSettledMs,
    attackersRefused: repliedCount(held),
    synSent: synSent(),
    pendingInUse: await metric(proxy.opsPort, 'socks4_slots_in_use{pool="pending"}'),
    readyz: await readyz(proxy.opsPort),
    legit: await legitClient(proxy.port, echo.port, { timeoutMs: 15_000 }),
  };

  // Hang-up: half send FIN, half reset; every pending connect must end with its client.
  held.forEach((a, i) => (i % 2 === 0 ? a.socket.end() : a.socket.resetAndDestroy()));
  const drainMs = await waitFor(
    async () => synSent() === 0 && (await metric(proxy.opsPort, 'socks4_slots_in_use{pool="pending"}')) === 0,
    10_000,
  );
  const afterHangup = {
    drainMs,
    synSent: synSent(),
    readyz: await readyz(proxy.opsPort),
    legit: await legitClient(proxy.port, echo.port, { timeoutMs: 15_000 }),
  };

  // One source: it may hold its share of the pool and no more; the rest stays free for others.
  const single = attack(600, () => '127.0.5.5');
  const singleSettledMs = await waitFor(
    () => single.every((a) => a.socket.bytesWritten > 0) && repliedCount(single) >= 600 - 250,
    20_000,
  );
  const oneSource = {
    settledMs: singleSettledMs,
    attackersRefused: repliedCount(single),
    pendingInUse: await metric(proxy.opsPort, 'socks4_slots_in_use{pool="pending"}'),
    legit: await legitClient(proxy.port, echo.port, { timeoutMs: 15_000 }),
  };
  for (const a of single) a.socket.destroy();

  const evictionLogged = /"reason":"TooManyPending"/.test(proxy.cli.output());
  report({ idle, duringHold, afterHangup, oneSource, evictionLogged });
} finally {
  await proxy.cli.stop('SIGKILL');
  rmSync(proxy.dir, { recursive: true, force: true });
  await echo.close();
}
