import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UsageError } from '../../src/cli/args.ts';
import type { CliIO } from '../../src/cli/args.ts';
import { runPolicyExplain, runPolicyValidate } from '../../src/cli/policy-command.ts';
import type { ExplainDeps } from '../../src/cli/policy-command.ts';

const EXAMPLE = new URL('../../examples/policy.yaml', import.meta.url).pathname;

function capture(): CliIO & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: (t) => void (out += t), stderr: (t) => void (err += t), out: () => out, err: () => err };
}

/** A resolver that must not be asked, and one that answers from a table. */
const noLookup: ExplainDeps = { lookup: async (host) => assert.fail(`unexpected DNS lookup of ${host}`) };
const fixedLookup = (table: Record<string, string>): ExplainDeps => ({
  lookup: async (host) => table[host] ?? Promise.reject(new Error(`getaddrinfo ENOTFOUND ${host}`)),
});

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'policy-command-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writePolicy(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

describe('policy validate', () => {
  it('summarises a valid file', async () => {
    const io = capture();
    assert.equal(await runPolicyValidate([EXAMPLE], io), 0);
    assert.equal(io.out(), 'ok: 2 policies, 6 rules\n');
    assert.equal(io.err(), '');
  });

  it('prints each problem on its own line and exits 1', async () => {
    const file = await writePolicy(
      'bad.yaml',
      [
        'apiVersion: socks4-fleet.io/v1alpha1',
        'kind: Socks4Policy',
        'metadata: {name: office, namespace: proxies}',
        'spec:',
        '  rules:',
        '    - {name: web, action: Allow, to: {ports: ["70000"]}}',
        '    - {name: web, action: Allow, form: {}}',
        '---',
        'apiVersion: v1',
        'kind: ConfigMap',
        '',
      ].join('\n'),
    );
    const io = capture();
    assert.equal(await runPolicyValidate([file], io), 1);
    assert.equal(io.out(), '');
    assert.equal(
      io.err(),
      [
        'proxies/office: spec.rules[0].to.ports[0]: "70000" is not a port',
        'proxies/office: spec.rules[1].form: unknown field (known fields: name, action, commands, from, to, ident, limits)',
        'proxies/office: spec.rules[1].name: duplicate rule name "web" (also spec.rules[0])',
        `${file} document 2: apiVersion: must be "socks4-fleet.io/v1alpha1", got "v1"`,
        `${file} document 2: kind: must be "Socks4Policy" or "ClusterSocks4Policy", got "ConfigMap"`,
        `${file} document 2: metadata: is required`,
        `${file} document 2: spec: is required`,
        '',
      ].join('\n'),
    );
  });

  it('reports duplicate policies across files and unreadable files', async () => {
    const missing = join(dir, 'missing.yaml');
    const io = capture();
    assert.equal(await runPolicyValidate([EXAMPLE, EXAMPLE, missing], io), 1);
    const lines = io.err().trimEnd().split('\n');
    assert.deepEqual(lines.slice(0, 2), [
      `default/local-dev: metadata.name: duplicate policy default/local-dev (also in ${EXAMPLE})`,
      `default/office-egress: metadata.name: duplicate policy default/office-egress (also in ${EXAMPLE})`,
    ]);
    assert.match(lines[2] ?? '', new RegExp(`^${missing}: cannot read: ENOENT`));
  });

  it('counts a single policy in the singular', async () => {
    const file = await writePolicy(
      'one.yaml',
      'apiVersion: socks4-fleet.io/v1alpha1\nkind: Socks4Policy\nmetadata: {name: one}\nspec: {rules: [{name: all, action: Deny}]}\n',
    );
    const io = capture();
    assert.equal(await runPolicyValidate([file], io), 0);
    assert.equal(io.out(), 'ok: 1 policy, 1 rule\n');
  });

  it('has help and refuses a missing FILE', async () => {
    const io = capture();
    assert.equal(await runPolicyValidate(['--help'], io), 0);
    assert.match(io.out(), /^Usage: socks4-fleet policy validate FILE/);
    await assert.rejects(runPolicyValidate([], capture()), UsageError);
  });
});

describe('policy explain', () => {
  it('explains a plain SOCKS4 request rule by rule', async () => {
    const io = capture();
    assert.equal(await runPolicyExplain([EXAMPLE, '--src', '127.0.0.1', '--dst', '127.0.0.1:8080'], io, noLookup), 0);
    assert.equal(
      io.out(),
      [
        'request:  connect from 127.0.0.1 user "" to 127.0.0.1:8080 (SOCKS4)',
        'decision: ALLOW',
        'reason:   RuleAllowed',
        'rule:     default/local-dev rule local-to-local',
        'ident:    Off',
        'limits:   none',
        'tier:     Namespace',
        'trace:',
        '  skip  default/local-dev rule deny-cloud-metadata (Deny): destination 127.0.0.1 is not in [169.254.169.254/32]',
        '  match default/local-dev rule local-to-local (Allow)',
        '        guard: 127.0.0.1 is loopback (127.0.0.0/8); opened because the rule names it in to.cidrs',
        '',
      ].join('\n'),
    );
  });

  it('resolves SOCKS4a names and reports limits', async () => {
    const io = capture();
    const code = await runPolicyExplain(
      [EXAMPLE, '--src', '::ffff:10.1.2.3', '--dst', 'WWW.example.com:443'],
      io,
      fixedLookup({ 'www.example.com': '93.184.216.34' }),
    );
    assert.equal(code, 0);
    const out = io.out();
    // The canonical name is what is matched and resolved, as in the proxy.
    assert.match(out, /^name:     "WWW\.example\.com" is matched and resolved as www\.example\.com$/m);
    assert.match(out, /^resolve:  www\.example\.com -> 93\.184\.216\.34 \(system resolver\)$/m);
    assert.match(
      out,
      /^decision: ALLOW\nreason:   RuleAllowed\nrule:     default\/local-dev rule example-web\nident:    Off\nlimits:   connectionRate 5\/s burst 10 per SourceIP$/m,
    );
  });

  it('uses --resolved instead of DNS, and shows the guard refusing', async () => {
    const io = capture();
    await runPolicyExplain(
      [EXAMPLE, '--src', '10.1.2.3', '--user', 'alice', '--dst', 'sneaky.example.org:443', '--resolved', '127.0.0.1'],
      io,
      noLookup,
    );
    const out = io.out();
    assert.match(out, /^resolve:  sneaky\.example\.org -> 127\.0\.0\.1 \(--resolved\)$/m);
    assert.match(
      out,
      /^decision: DENY\nreason:   GuardedDestination\nrule:     default\/office-egress rule staff-web$/m,
    );
    assert.match(
      out,
      /guard: 127\.0\.0\.1 is loopback \(127\.0\.0\.0\/8\); refused because the rule's to\.cidrs \[0\.0\.0\.0\/0\] do not name it/,
    );
  });

  it('guards --self addresses', async () => {
    const io = capture();
    await runPolicyExplain(
      [EXAMPLE, '--src', '10.1.2.3', '--user', 'svc-ci', '--dst', '10.9.9.9:443', '--self', '10.9.9.9'],
      io,
      noLookup,
    );
    assert.match(io.out(), /^reason:   GuardedDestination$/m);
    assert.match(io.out(), /guard: 10\.9\.9\.9 is one of the proxy's own addresses; refused .*\(add 10\.9\.9\.9\/32\)/);
  });

  it('guards --guard-endpoint addresses and names the guard', async () => {
    const io = capture();
    await runPolicyExplain(
      [EXAMPLE, '--src', '10.1.2.3', '--user', 'alice', '--dst', '10.0.0.9:443', '--guard-endpoint', '10.0.0.9:443'],
      io,
      noLookup,
    );
    assert.match(io.out(), /^reason:   GuardedDestination\n(.*\n){3}guard:    guard-endpoint$/m);
    assert.match(
      io.out(),
      /guard: 10\.0\.0\.9 is guard-endpoint: a --guard-endpoint \(port 443, from --guard-endpoint 10\.0\.0\.9:443\); refused .*\(add 10\.0\.0\.9\/32\)/,
    );
    await assert.rejects(
      runPolicyExplain(
        [EXAMPLE, '--src', '10.1.2.3', '--dst', '10.0.0.9:443', '--guard-endpoint', 'redis.local'],
        capture(),
        noLookup,
      ),
      (error: unknown) =>
        error instanceof UsageError && /--guard-endpoint: "redis\.local" is not an IPv4 address/.test(error.message),
    );
  });

  it('explains an invalid or converted SOCKS4a name the way the proxy treats it', async () => {
    const io = capture();
    await runPolicyExplain([EXAMPLE, '--src', '127.0.0.1', '--dst', 'a..b:80'], io, noLookup);
    assert.match(
      io.out(),
      /^name:     "a\.\.b" has an empty label: refused before any rule or DNS\ndecision: DENY\nreason:   InvalidHostname$/m,
    );
    const spelled = capture();
    await runPolicyExplain([EXAMPLE, '--src', '127.0.0.1', '--dst', '0x7f.1:8080'], spelled, noLookup);
    assert.match(
      spelled.out(),
      /^name:     "0x7f\.1" is matched and resolved as 127\.0\.0\.1\nresolve:  skipped: the name is an IPv4 address$/m,
    );
    assert.match(spelled.out(), /^decision: ALLOW$/m);
  });

  it('skips DNS for names no rule could allow', async () => {
    const io = capture();
    await runPolicyExplain(
      [EXAMPLE, '--src', '10.1.2.3', '--user', 'alice', '--dst', 'mail.example.org:25'],
      io,
      noLookup,
    );
    assert.equal(
      io.out(),
      [
        'request:  connect from 10.1.2.3 user "alice" to mail.example.org:25 (SOCKS4a)',
        'resolve:  skipped: no rule could allow mail.example.org, so the proxy refuses it without a DNS lookup',
        'decision: DENY',
        'reason:   RuleDenied',
        'rule:     default/office-egress rule no-smtp',
        'ident:    Off',
        'limits:   none',
        'tier:     Namespace',
        '',
      ].join('\n'),
    );
  });

  it('reports a failed lookup as DnsFailed', async () => {
    const io = capture();
    assert.equal(
      await runPolicyExplain(
        [EXAMPLE, '--src', '10.1.2.3', '--user', 'alice', '--dst', 'nowhere.invalid:443'],
        io,
        fixedLookup({}),
      ),
      0,
    );
    assert.match(io.out(), /^resolve:  nowhere\.invalid failed: getaddrinfo ENOTFOUND nowhere\.invalid/m);
    assert.match(io.out(), /^decision: DENY\nreason:   DnsFailed\nrule:     none$/m);
  });

  it('asks the system resolver by default', async () => {
    const io = capture();
    await runPolicyExplain([EXAMPLE, '--src', '10.1.2.3', '--user', 'alice', '--dst', 'localhost:443'], io);
    assert.match(io.out(), /^resolve:  localhost -> 127\.\d+\.\d+\.\d+ \(system resolver\)$/m);
    assert.match(io.out(), /^reason:   GuardedDestination$/m);
  });

  it('explains BIND and ident', async () => {
    const io = capture();
    await runPolicyExplain(
      [EXAMPLE, '--src', '192.168.4.4', '--user', 'bob', '--dst', '93.184.216.34:8080', '--command', 'connect'],
      io,
      noLookup,
    );
    assert.match(
      io.out(),
      /^decision: ALLOW\nreason:   RuleAllowed\nrule:     default\/office-egress rule staff-web\nident:    Optional\nlimits:   concurrentSessions 50 per UserID, bandwidth 1048576 B\/s per Session$/m,
    );
    const bind = capture();
    await runPolicyExplain(
      [EXAMPLE, '--src', '127.0.0.1', '--dst', '127.0.0.1:20', '--command', 'bind'],
      bind,
      noLookup,
    );
    assert.match(bind.out(), /^rule:     default\/local-dev rule local-bind$/m);
  });

  it('exits 1 on an invalid policy file', async () => {
    const file = await writePolicy(
      'broken.yaml',
      'apiVersion: socks4-fleet.io/v1alpha1\nkind: Socks4Policy\nmetadata: {name: x}\nspec: {rules: [{name: a, action: Maybe}]}\n',
    );
    const io = capture();
    assert.equal(await runPolicyExplain([file, '--src', '10.0.0.1', '--dst', '1.2.3.4:80'], io, noLookup), 1);
    assert.equal(io.err(), 'default/x: spec.rules[0].action: must be one of Allow, Deny, got "Maybe"\n');
  });

  it('refuses bad usage with a message', async () => {
    const cases: [string[], RegExp][] = [
      [[EXAMPLE, '--dst', '1.2.3.4:80'], /--src IP is required/],
      [[EXAMPLE, '--src', '10.0.0.1'], /--dst HOST:PORT is required/],
      [[EXAMPLE, '--src', 'nope', '--dst', '1.2.3.4:80'], /--src: "nope" is not an IPv4 address/],
      [[EXAMPLE, '--src', '10.0.0.1', '--dst', '1.2.3.4:0'], /--dst: "1.2.3.4:0" is not HOST:PORT/],
      [[EXAMPLE, '--src', '10.0.0.1', '--dst', '1.2.3.4'], /is not HOST:PORT/],
      [
        [EXAMPLE, '--src', '10.0.0.1', '--dst', '1.2.3.4:80', '--command', 'udp'],
        /--command: "udp" is not connect or bind/,
      ],
      [
        [EXAMPLE, '--src', '10.0.0.1', '--dst', '1.2.3.4:80', '--resolved', '5.6.7.8'],
        /--resolved applies only when --dst names a host/,
      ],
      [
        ['--src', '10.0.0.1', '--dst', '1.2.3.4:80'],
        /expected a policy FILE, or --redis-url URL \(or env REDIS_URL\) for the live rules/,
      ],
      [
        [EXAMPLE, EXAMPLE, '--src', '10.0.0.1', '--dst', '1.2.3.4:80'],
        /expected one FILE, or --redis-url URL for the live rules/,
      ],
    ];
    // No REDIS_URL in this environment: without FILE there is no rule source at all.
    for (const [argv, message] of cases)
      await assert.rejects(runPolicyExplain(argv, capture(), { ...noLookup, env: {} }), message);
    const help = capture();
    assert.equal(await runPolicyExplain(['--help'], help), 0);
    assert.match(help.out(), /Exit status: 0 when the decision was explained, whether ALLOW or DENY/);
  });
});

describe('report mode in validate and explain (FILE)', () => {
  const reportFile = (): Promise<string> =>
    writePolicy(
      'report.yaml',
      [
        'apiVersion: socks4-fleet.io/v1alpha1',
        'kind: Socks4Policy',
        'metadata: {name: trial, namespace: proxies}',
        'spec:',
        '  priority: 10',
        '  enforcement: Report',
        '  rules:',
        '    - {name: no-smtp, action: Deny, to: {ports: ["25"]}}',
        '---',
        'apiVersion: socks4-fleet.io/v1alpha1',
        'kind: Socks4Policy',
        'metadata: {name: office, namespace: proxies}',
        'spec:',
        '  rules:',
        '    - {name: web, action: Allow, to: {hosts: ["*.example.com"], ports: ["443"]}}',
        '',
      ].join('\n'),
    );

  it('validate counts Report policies apart', async () => {
    const io = capture();
    assert.equal(await runPolicyValidate([await reportFile()], io), 0);
    assert.equal(io.out(), 'ok: 2 policies, 2 rules (1 in Report mode: recorded, not enforced)\n');
  });

  it('a name refused before DNS still shows what the Report policy would decide, without a lookup', async () => {
    const io = capture();
    assert.equal(
      await runPolicyExplain([await reportFile(), '--src', '10.0.0.1', '--dst', 'mail.example.net:25'], io, noLookup),
      0,
    );
    assert.match(io.out(), /^resolve: {2}skipped: no rule could allow mail\.example\.net/m);
    assert.match(io.out(), /^decision: DENY\nreason: {3}NoRuleMatched\n/m);
    assert.match(
      io.out(),
      /^report: {3}DENY \(RuleDenied\) by proxies\/trial rule no-smtp \[Report\]: recorded, not enforced$/m,
    );
  });

  it('a request no Report rule matches says so', async () => {
    const io = capture();
    assert.equal(
      await runPolicyExplain(
        [await reportFile(), '--src', '10.0.0.1', '--dst', 'www.example.com:443', '--resolved', '93.184.216.34'],
        io,
        noLookup,
      ),
      0,
    );
    assert.match(io.out(), /^decision: ALLOW$/m);
    assert.match(io.out(), /^report: {3}none: no Report policy would decide this request$/m);
    assert.match(io.out(), /^ {2}skip {2}proxies\/trial rule no-smtp \(Deny\) \[Report\]: port 443 is not in \[25\]$/m);
  });
});
