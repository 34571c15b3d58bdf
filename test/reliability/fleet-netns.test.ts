// End to end: a real Redis-mode proxy whose Redis and a private test service live in a second
// network namespace, behind a veth pair with 10.x addresses the test creates and deletes. Nothing
// here reaches an address outside 127.0.0.0/8 and that namespace: attack requests are refused
// before any connect, and the addresses dialled are the namespace's own.
//
// - `to.cidrs: ["0.0.0.0/0"]` reaches neither the private service nor the fleet's Redis;
// - `to.cidrs: ["10.0.0.0/8"]` reaches the service, and still not the Redis (on its real 6379);
// - Unicode look-alikes of a name a `to.hosts` Deny names are refused by that rule, logged as the
//   ASCII name, while a legitimate client keeps being served within a bound.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getOps, runCli, startProxyProcess, type ProxyProcess } from '../helpers/fleet.ts';
import { connectRaw, socks4Request } from '../helpers/servers.ts';
import { cleanEnv } from '../helpers/spawn.ts';

const id = `${process.pid % 10000}${Math.floor(Math.random() * 100)}`;
const NS = `s4f13-${id}`;
const HOST_IF = `s4f13h${id}`;
const NS_IF = `s4f13n${id}`;
// A /29 in 10.200-249.x.0 that no route of this machine covers (checked in before()).
const third = Math.floor(Math.random() * 250);
const second = 200 + Math.floor(Math.random() * 50);
const net = `10.${second}.${third}`;
const HOST_IP = `${net}.1`;
const REDIS_IP = `${net}.2`;
const SERVICE_IP = `${net}.3`;
const REDIS_PORT = 6379;
const SERVICE_PORT = 8080;

const dir = mkdtempSync(path.join(tmpdir(), 's4f13-'));
const children: ChildProcess[] = [];
let proxy: ProxyProcess | null = null;
let netnsMade = false;

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

/** Starts `command` inside the namespace and waits (bounded) for `ready` in its output. */
async function startInNamespace(command: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', NS, ...command], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command[0]} did not start in ${NS}:\n${output}`)), 20_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${command[0]} exited (${code}) in ${NS}:\n${output}`));
    });
  });
  return child;
}

function policy(name: string, rules: string): string {
  return `apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: ${name}, namespace: e2e}
spec:
  rules:
${rules}`;
}

async function push(yaml: string): Promise<void> {
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, yaml);
  const { code, out } = await runCli(['policy', 'push', file, '--redis-url', `redis://${REDIS_IP}:${REDIS_PORT}`]);
  assert.equal(code, 0, out);
}

/** The proxy's log lines for sessions, parsed. */
function sessionLogs(): { host?: string; dest?: string; reason?: string; guard?: string; reply?: number }[] {
  return (proxy?.log() ?? '')
    .split('\n')
    .filter((l) => l.includes('"session'))
    .map((l) => JSON.parse(l) as Record<string, never>);
}

let sessionsSeen = 0;

/** One SOCKS4(a) CONNECT through the proxy; the reply code (-1 when closed without one). */
async function attempt(destIp: string, port: number, host?: string): Promise<number> {
  const raw = await connectRaw(proxy!.port);
  raw.socket.write(socks4Request(1, port, destIp, 'e2e', host));
  const reply = await raw.read(8);
  raw.socket.destroy();
  sessionsSeen++;
  return reply.length === 8 ? (reply[1] as number) : -1;
}

/** Waits (bounded) until the proxy has logged every session this test sent. */
async function loggedSessions(): Promise<ReturnType<typeof sessionLogs>> {
  for (let i = 0; i < 200; i++) {
    const logs = sessionLogs();
    if (logs.length >= sessionsSeen) return logs;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.fail(`the proxy logged ${sessionLogs().length} of ${sessionsSeen} sessions`);
}

/** An HTTP GET through the proxy with curl (a real SOCKS4 client); body and seconds taken. */
async function curl(
  target: string,
  mode: '--socks4' | '--socks4a' = '--socks4',
): Promise<{ body: string; seconds: number; code: number | null; stderr: string }> {
  const started = performance.now();
  const child = spawn('curl', ['-sS', '--max-time', '10', mode, `127.0.0.1:${proxy!.port}`, `http://${target}/`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let body = '';
  child.stdout.on('data', (c: Buffer) => (body += c.toString()));
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  // 'close', not 'exit': stdout may still hold the body when the process has exited.
  const [code] = (await once(child, 'close')) as [number | null];
  sessionsSeen++;
  return { body, seconds: (performance.now() - started) / 1000, code, stderr };
}

/** Waits (bounded) until the proxy has loaded `count` snapshots. */
async function waitForSnapshots(count: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((proxy!.log().match(/rules snapshot loaded/g) ?? []).length >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`the proxy did not load snapshot ${count}:\n${proxy!.log()}`);
}

before(async () => {
  // The subnet must be ours alone: no route of this machine may already cover it.
  const routes = ip('-4', 'route', 'show', 'table', 'all');
  assert.ok(!routes.includes(`10.${second}.${third}.`), `10.${second}.${third}.0/29 is in use:\n${routes}`);
  ip('netns', 'add', NS);
  netnsMade = true;
  ip('link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF);
  ip('link', 'set', NS_IF, 'netns', NS);
  ip('addr', 'add', `${HOST_IP}/29`, 'dev', HOST_IF);
  ip('link', 'set', HOST_IF, 'up');
  ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${REDIS_IP}/29`, 'dev', NS_IF);
  ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${SERVICE_IP}/29`, 'dev', NS_IF);
  ip('netns', 'exec', NS, 'ip', 'link', 'set', NS_IF, 'up');
  ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
  await startInNamespace(
    [
      'redis-server',
      '--bind',
      REDIS_IP,
      '--port',
      String(REDIS_PORT),
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'no',
      '--dir',
      dir,
    ],
    /Ready to accept connections/,
  );
  const serve = `require('node:http').createServer((q, s) => s.end('service-ok\\n')).listen(${SERVICE_PORT}, '${SERVICE_IP}', () => console.log('up'))`;
  await startInNamespace([process.execPath, '-e', serve], /up/);
  await push(
    policy('internet', `    - {name: internet, action: Allow, commands: [Connect], to: {cidrs: ["0.0.0.0/0"]}}\n`),
  );
  proxy = await startProxyProcess(['--redis-url', `redis://${REDIS_IP}:${REDIS_PORT}`]);
  await waitForSnapshots(1);
});

after(async () => {
  await proxy?.kill();
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
  // Deleting the namespace deletes its end of the veth pair, and with it the host's end.
  if (netnsMade) ip('netns', 'del', NS);
  try {
    ip('link', 'del', HOST_IF);
  } catch {
    // already gone with the namespace
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('SSRF guard end to end, Redis and a private service in a network namespace', () => {
  it('the service and Redis are really there (positive control: reachable directly)', async () => {
    const direct = spawn('curl', ['-s', '--max-time', '5', `http://${SERVICE_IP}:${SERVICE_PORT}/`], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let body = '';
    direct.stdout.on('data', (c: Buffer) => (body += c.toString()));
    await once(direct, 'close');
    assert.equal(body, 'service-ok\n');
    assert.match(
      proxy!.log(),
      new RegExp(`"guard":"redis","address":"${REDIS_IP.replaceAll('.', '\\.')}","port":${REDIS_PORT}`),
    );
  });

  it('0.0.0.0/0 reaches neither the private service nor the fleet Redis', async () => {
    assert.equal(await attempt(SERVICE_IP, SERVICE_PORT), 91);
    assert.equal(await attempt(REDIS_IP, REDIS_PORT), 91);
    const refused = (await loggedSessions()).filter((l) => l.reason === 'GuardedDestination');
    assert.deepEqual(
      refused.map((l) => `${l.dest} ${l.guard}`),
      [`${SERVICE_IP} private`, `${REDIS_IP} redis`],
    );
    const metrics = (await getOps(proxy!.opsPort, '/metrics')).body;
    assert.match(metrics, /socks4_guard_refusals_total\{guard="private"\} 1/);
    assert.match(metrics, /socks4_guard_refusals_total\{guard="redis"\} 1/);
  });

  it('a rule naming 10.0.0.0/8 opens the service, not Redis, and look-alikes of a denied name are refused', async () => {
    await push(
      policy(
        'internal',
        [
          '    - {name: no-secret, action: Deny, to: {hosts: ["secret.test"]}}',
          '    - {name: internal, action: Allow, commands: [Connect], to: {cidrs: ["10.0.0.0/8"]}}',
          '',
        ].join('\n'),
      ),
    );
    await waitForSnapshots(2);
    const served = await curl(`${SERVICE_IP}:${SERVICE_PORT}`);
    assert.equal(served.body, 'service-ok\n');
    // Redis on its real port stays closed, by plain SOCKS4 and by names spelled as its address.
    const [a, b, c] = REDIS_IP.split('.').map(Number) as [number, number, number, number];
    const hex = `0x${a.toString(16)}.0x${b.toString(16)}.${c}.2`;
    const spelled = String(((a * 256 + b) * 256 + c) * 256 + 2);
    assert.equal(await attempt(REDIS_IP, REDIS_PORT), 91);
    assert.equal(await attempt('0.0.0.1', REDIS_PORT, hex), 91);
    assert.equal(await attempt('0.0.0.1', REDIS_PORT, spelled), 91);
    assert.equal(await attempt('0.0.0.1', REDIS_PORT, `::ffff:${REDIS_IP}`), 91);
    const redisRefusals = (await loggedSessions()).filter((l) => l.guard === 'redis');
    assert.equal(redisRefusals.length, 5, 'one refusal under 0.0.0.0/0, four under 10.0.0.0/8');
    // The same spelling of the service's address is served: a name spelled as an address is that address.
    assert.equal(await attempt('0.0.0.1', SERVICE_PORT, `${SERVICE_IP.split('.').slice(0, 3).join('.')}.0x3`), 90);

    // Unicode look-alikes of the denied name, sent through curl --socks4a (the proxy resolves).
    const before = (await loggedSessions()).length;
    for (const name of ['ＳＥＣＲＥＴ.test', 'sec\u00adret.test', 'sec\u200bret.test', '𝐬𝐞𝐜𝐫𝐞𝐭.test', 'SECRET.test.']) {
      assert.equal(await attempt('0.0.0.1', SERVICE_PORT, name), 91, name);
    }
    const lookAlikes = (await loggedSessions()).slice(before);
    assert.deepEqual(
      lookAlikes.map((l) => `${l.host} ${l.reason}`),
      Array(5).fill('secret.test RuleDenied'),
    );
  });

  it('keeps serving a legitimate client, each within 5 s, while Redis is attacked', async () => {
    const attacks = Array.from({ length: 40 }, () => attempt(REDIS_IP, REDIS_PORT));
    const legit = Array.from({ length: 5 }, () => curl(`${SERVICE_IP}:${SERVICE_PORT}`));
    const codes = await Promise.all(attacks);
    const fetched = await Promise.all(legit);
    assert.ok(
      codes.every((code) => code === 91),
      `an attack got through: ${codes.join(',')}`,
    );
    for (const f of fetched) {
      assert.equal(f.body, 'service-ok\n', `curl exited ${f.code}: ${f.stderr}`);
      assert.ok(f.seconds < 5, `a legitimate fetch took ${f.seconds.toFixed(2)} s`);
    }
  });
});
