// Hostile data through the real CLI: USERIDs and 4a names carrying glob characters, newlines,
// ANSI escapes, JSON fragments, Unicode line separators, invalid UTF-8 and 255 bytes. The proxy's
// log stays one JSON object per line with the strings as data, glob characters in a USERID stay
// literal, and /metrics never grows a label from client input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Reason } from '../../src/errors.ts';
import { connectRaw, startEchoServer, type Closable } from '../helpers/servers.ts';
import { startCli, type CliProcess } from '../helpers/spawn.ts';

const MARK = 'zq7hostile';
const hostileStrings = [
  `${MARK}\n{"level":"fatal","msg":"forged"}`,
  `${MARK}\r\nSet-Cookie: x`,
  `${MARK}\x1b[2J\x1b[31mred\x1b[0m\x07`,
  `${MARK}\u2028\u2029\u0085line separators`,
  `${MARK}"},{"injected":true,"x":"`,
  `${MARK}\\u0000 %s %d %j %o`,
  `${MARK}\${jndi:ldap://x/a}<script>alert(1)</script>`,
  `${MARK}\u202egnp.exe`,
  `${MARK}\t\v\f\b`,
  `${MARK}${'x'.repeat(255 - MARK.length)}`,
];
// Glob characters in a USERID are literal: none of these is "alice".
const globUsers = ['*', 'al*', 'al?ce', '[a-z]lice', 'ALICE', '?????', 'alice*', '**'];

let dir: string;
let echo: Closable;
let cli: CliProcess;
let socksPort: number;
let opsPort: number;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'socks4-hostile-'));
  echo = await startEchoServer();
  const policyFile = path.join(dir, 'policy.yaml');
  await writeFile(
    policyFile,
    `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: hostile, namespace: reliability}
spec:
  rules:
    - {name: services, action: Allow, commands: [Connect], from: {userids: ["svc-*"]}, to: {cidrs: ["127.0.0.1/32"], ports: ["${echo.port}"]}}
    - {name: alice, action: Allow, commands: [Connect], from: {userids: ["alice"]}, to: {cidrs: ["127.0.0.1/32"], ports: ["${echo.port}"]}}
`,
  );
  // Port 0: the kernel picks, so no other suite's client can take the port between a probe and
  // the bind; the proxy logs the addresses it got.
  cli = startCli([
    'proxy',
    '--listen',
    '127.0.0.1:0',
    '--ops-listen',
    '127.0.0.1:0',
    '--policy-file',
    policyFile,
    '--drain-grace',
    '1s',
  ]);
  await cli.waitForOutput(/proxy listening/);
  const listening = /"listen":"127\.0\.0\.1:(\d+)","ops":"127\.0\.0\.1:(\d+)"/.exec(cli.output());
  assert.ok(listening, cli.output());
  socksPort = Number(listening[1]);
  opsPort = Number(listening[2]);
});

after(async () => {
  await cli.stop('SIGKILL');
  await echo.close();
  await rm(dir, { recursive: true, force: true });
});

/** One request with raw USERID (and name) bytes; returns the reply code. */
async function send(userId: Buffer, host: Buffer | null): Promise<number | undefined> {
  const head = Buffer.from([
    4,
    1,
    echo.port >> 8,
    echo.port & 0xff,
    ...(host === null ? [127, 0, 0, 1] : [0, 0, 0, 1]),
  ]);
  const raw = await connectRaw(socksPort);
  raw.socket.write(Buffer.concat([head, userId, Buffer.from([0]), ...(host === null ? [] : [host, Buffer.from([0])])]));
  const reply = await raw.read(8);
  raw.socket.end();
  await raw.closed;
  return reply[1];
}

interface Sent {
  userId: string; // as the proxy decodes it (UTF-8, replacement characters for bad bytes)
  host: string | null;
  code: number | undefined;
}
const sent: Sent[] = [];

async function sendAll(): Promise<void> {
  const cases: [Buffer, Buffer | null][] = [];
  for (const s of hostileStrings) {
    cases.push([Buffer.from(s), null]); // as USERID: refused
    cases.push([Buffer.from(`svc-${s}`.slice(0, 255)), null]); // matches svc-*: granted
    const name = Buffer.from(s).subarray(0, 255);
    cases.push([Buffer.from('nobody'), name]); // as a 4a name: no rule could allow it, so no DNS
  }
  cases.push([Buffer.from([0x7a, 0x71, 0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]), null]); // invalid UTF-8
  cases.push([Buffer.from('nobody'), Buffer.from([0xc0, 0xaf, 0xff, 0x2e, 0x2e])]);
  for (const user of globUsers) cases.push([Buffer.from(user), null]);
  cases.push([Buffer.from('alice'), null], [Buffer.from('svc-*'), null]);
  for (const [user, host] of cases) {
    const code = await send(user, host);
    sent.push({ userId: user.toString('utf8'), host: host === null ? null : host.toString('utf8'), code });
  }
}

test('glob characters in a USERID are literal; only the real names match', async () => {
  await sendAll();
  const codeOf = (user: string): number | undefined => sent.find((s) => s.userId === user && s.host === null)?.code;
  for (const user of globUsers) assert.equal(codeOf(user), 91, JSON.stringify(user));
  assert.equal(codeOf('alice'), 90);
  assert.equal(codeOf('svc-*'), 90);
  for (const s of hostileStrings) {
    assert.equal(codeOf(s), 91);
    assert.equal(codeOf(`svc-${s}`.slice(0, 255)), 90, 'a hostile suffix is still a svc-* USERID');
  }
});

test('/metrics carries no USERID, host or address, and its label values come from fixed sets', async () => {
  const body = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  assert.doesNotMatch(body, new RegExp(MARK));
  assert.doesNotMatch(body, /alice|svc-|nobody|127\.0\.0\.1/);
  const reasons = new Set<string>([...Object.values(Reason), '']);
  const allowed: Record<string, (v: string) => boolean> = {
    command: (v) => ['connect', 'bind', 'none'].includes(v),
    reply: (v) => ['90', '91', '92', '93', 'none'].includes(v),
    reason: (v) => reasons.has(v),
    direction: (v) => v === 'upstream' || v === 'downstream',
  };
  let series = 0;
  const reasonLabels = new Set<string>();
  for (const line of body.split('\n')) {
    if (!line.startsWith('socks4_sessions_total{') && !line.startsWith('socks4_relayed_bytes_total{')) continue;
    series++;
    const reason = /reason="([^"]*)"/.exec(line)?.[1];
    if (reason !== undefined) reasonLabels.add(reason);
    for (const [, name, value] of line.matchAll(/(\w+)="([^"]*)"/g)) {
      assert.ok(allowed[name!]?.(value!), `label ${name}="${value}" in ${line}`);
    }
  }
  // Granted, refused by NoRuleMatched, and hostile 4a names that are not host names refused as
  // InvalidHostname: three series, however many distinct clients.
  assert.equal(series, 3, `${series} session series for ${sent.length} distinct clients`);
  assert.deepEqual([...reasonLabels].sort(), ['', 'InvalidHostname', 'NoRuleMatched']);
});

test('the log is one JSON object per line; hostile strings are fields, intact, never the message', async () => {
  cli.child.kill('SIGTERM');
  assert.equal(await cli.exited, 0);
  const output = cli.output();
  // Splitting on what any log tool treats as a line break, not only \n.
  const lines = output.split(/\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/).filter((l) => l.length > 0);
  const records = lines.map((line, i) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      assert.fail(`log line ${i} is not JSON: ${JSON.stringify(line.slice(0, 200))}`);
    }
  });
  assert.doesNotMatch(output, /\x1b|\x07/, 'raw terminal control bytes in the log');
  const sessions = records.filter((r) => r.msg === 'session refused' || r.msg === 'session closed');
  assert.equal(sessions.length, sent.length, 'one line per session, none split, none lost');
  for (const r of sessions) assert.doesNotMatch(String(r.msg), new RegExp(MARK));
  // Each string arrives whole as a field value.
  const logged = new Set(sessions.map((r) => JSON.stringify([r.userId, r.host])));
  for (const s of sent)
    assert.ok(logged.has(JSON.stringify([s.userId, s.host])), `not logged intact: ${JSON.stringify(s.userId)}`);
});
