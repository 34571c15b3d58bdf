// `policy explain --namespace NS`: the client as a pod of NS, evaluated as the operator's fleet
// evaluates it (a Socks4Policy governs its own namespace only), and the tier that decided.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UsageError } from '../../src/cli/args.ts';
import type { CliIO } from '../../src/cli/args.ts';
import { runPolicyExplain } from '../../src/cli/policy-command.ts';

const TENANTS = `apiVersion: socks4-fleet.io/v1alpha1
kind: ClusterSocks4Policy
metadata: {name: guard}
spec:
  priority: 10
  rules:
    - {name: no-smtp, action: Deny, to: {ports: ["25"]}}
    - {name: web-to-namespaces, action: Pass, to: {ports: ["443"]}}
---
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: lockdown, namespace: team-b}
spec:
  priority: 0
  rules:
    - {name: all, action: Deny}
---
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: web, namespace: team-a}
spec:
  rules:
    - {name: https, action: Allow, to: {ports: ["443", "25"]}}
`;

function capture(): CliIO & { out: () => string } {
  let out = '';
  return { stdout: (t) => void (out += t), stderr: (t) => void (out += t), out: () => out };
}
const noLookup = { lookup: async (host: string): Promise<string> => assert.fail(`unexpected DNS lookup of ${host}`) };

let dir = '';
let file = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'explain-ns-'));
  file = join(dir, 'tenants.yaml');
  await writeFile(file, TENANTS);
});
after(async () => rm(dir, { recursive: true, force: true }));

async function explain(...args: string[]): Promise<string> {
  const io = capture();
  assert.equal(await runPolicyExplain([file, '--src', '10.1.0.5', ...args], io, noLookup), 0);
  return io.out();
}

describe('policy explain --namespace', () => {
  it("a pod of team-a is passed to its namespace and allowed; team-b's Deny-all is skipped", async () => {
    assert.equal(
      await explain('--dst', '93.184.216.34:443', '--namespace', 'team-a'),
      [
        'request:  connect from 10.1.0.5 (a pod of namespace team-a) user "" to 93.184.216.34:443 (SOCKS4)',
        'decision: ALLOW',
        'reason:   RuleAllowed',
        'rule:     team-a/web rule https',
        'ident:    Off',
        'limits:   none',
        'tier:     Namespace',
        'trace:',
        '  skip  cluster guard rule no-smtp (Deny): port 443 is not in [25]',
        "  pass  cluster guard rule web-to-namespaces (Pass): the rest of the cluster tier is skipped; the client's namespace decides",
        '  skip  team-b/lockdown rule all (Deny): the policy governs pods of its own namespace, and the client is in namespace "team-a"',
        '  match team-a/web rule https (Allow)',
        '',
      ].join('\n'),
    );
  });

  it("the cluster Deny decides before team-a's Allow", async () => {
    const out = await explain('--dst', '93.184.216.34:25', '--namespace', 'team-a');
    assert.match(
      out,
      /^decision: DENY\nreason:   RuleDenied\nrule:     cluster guard rule no-smtp\n(.*\n){2}tier:     Cluster$/m,
    );
  });

  it("a client that is no pod is governed by cluster policies alone (--namespace '')", async () => {
    const out = await explain('--dst', '93.184.216.34:443', '--namespace', '');
    assert.match(out, /^decision: DENY\nreason:   NoRuleMatched\n(.*\n){3}tier:     Default$/m);
    assert.match(
      out,
      /team-a\/web rule https \(Allow\): the policy governs pods of its own namespace, and the client is no pod/,
    );
  });

  it('without --namespace every policy applies to every client, as with --policy-file', async () => {
    const out = await explain('--dst', '93.184.216.34:443');
    assert.match(out, /^rule:     team-b\/lockdown rule all\n(.*\n){2}tier:     Namespace$/m);
  });

  it('refuses a namespace that is no namespace name, in one line', async () => {
    await assert.rejects(explain('--dst', '93.184.216.34:443', '--namespace', 'Team_A'), (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.equal(
        error.message,
        `--namespace: "Team_A" is not a namespace name (lowercase letters, digits and '-', at most 63); use --namespace '' for a client that is no pod`,
      );
      return true;
    });
  });
});
