// Run by timeouts.test.ts as `unshare --net -- node netns-dial.ts CONNECT_TIMEOUT_MS`: inside a
// network namespace of its own (only `lo` and the veth pair below exist in it), so nothing it
// sends can leave this process's sandbox. 10.77.0.2 sits behind one end of the pair with a fixed
// neighbour entry whose MAC no interface has: every SYN to it is put on the wire and silently
// dropped by the other end, as at a firewall that drops, so the connect can only time out.
// Prints one JSON line: the reply, the session's reason and how long the reply took.
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import { connectRaw, socks4Request, startProxy } from '../helpers/servers.ts';

const connectTimeoutMs = Number(process.argv[2]);
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });
ip('link', 'set', 'lo', 'up');
ip('link', 'add', 'drop0', 'type', 'veth', 'peer', 'name', 'drop1');
ip('addr', 'add', '10.77.0.1/24', 'dev', 'drop0');
ip('link', 'set', 'drop0', 'up');
ip('link', 'set', 'drop1', 'up');
ip('neigh', 'add', '10.77.0.2', 'lladdr', '02:00:00:00:77:02', 'dev', 'drop0', 'nud', 'permanent');
const links = ip('-o', 'link', 'show')
  .split('\n')
  .filter(Boolean)
  .map((line) => line.split(':')[1]!.trim().split('@')[0]);

const proxy = await startProxy(
  `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: dropped}
spec:
  rules:
    - {name: lab, action: Allow, commands: [Connect], to: {cidrs: ["10.77.0.0/24"]}}
`,
  { config: { connectTimeoutMs } },
);
let ended: SessionInfo | null = null;
channels.sessionEnd.subscribe((message) => void (ended = { ...(message as SessionInfo) }));
const raw = await connectRaw(proxy.port);
const started = performance.now();
raw.socket.write(socks4Request(1, 80, '10.77.0.2', 'probe'));
const reply = await raw.read(8, connectTimeoutMs + 10_000);
const replyMs = performance.now() - started;
await raw.closed;
for (let i = 0; i < 100 && ended === null; i++) await new Promise((resolve) => setTimeout(resolve, 10));
await proxy.close();
const session = ended as SessionInfo | null;
console.log(JSON.stringify({ links, reply: [...reply], reason: session?.reason ?? null, replyMs }));
