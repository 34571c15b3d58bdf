// The contract every rule source passes (the file source and the Redis source), in the style of
// aedes-persistence's abstract suite: `runRuleSourceContract(name, open)` registers the tests.
// A harness publishes policy text the way its backend does (write the file; push a snapshot) and
// can publish something broken (a file that does not parse; a snapshot that does not validate).

import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { evaluate } from '../../src/policy/evaluate.ts';
import type { RuleSnapshot, RuleSource } from '../../src/rules/types.ts';

export interface RuleSourceHarness {
  readonly source: RuleSource;
  /** Makes `yaml` (a policy file's text) the rules the backend offers. */
  publish(yaml: string): Promise<void>;
  /** Makes something the source must refuse the rules the backend offers. */
  publishBroken(): Promise<void>;
  /** Makes the running source look at what is published now (a forced re-read). */
  settle(): Promise<void>;
  /** A second source over the same backend (not started; cleaned up with the harness). */
  another(): RuleSource;
  cleanup(): Promise<void>;
}

/** `initial` is published before start(); null = nothing there yet. */
export type OpenHarness = (initial: string | null) => Promise<RuleSourceHarness>;

export function policyYaml(
  port: number,
  options: { name?: string; action?: 'Allow' | 'Deny'; rules?: number } = {},
): string {
  const rules = Array.from(
    { length: options.rules ?? 1 },
    (_, i) => `
    - name: rule-${i}
      action: ${options.action ?? 'Allow'}
      to: {cidrs: ["192.0.2.0/24"], ports: ["${port + i}"]}`,
  ).join('');
  return `apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: ${options.name ?? 'office'}, namespace: proxies}
spec:
  rules:${rules}
`;
}

/** What the snapshot decides for a connect to 192.0.2.10:port. */
export function decide(snapshot: RuleSnapshot | null, port: number): string {
  assert.ok(snapshot, 'no snapshot held');
  const decision = evaluate(snapshot.compiled, {
    command: 'connect',
    sourceIp: '10.0.0.1',
    userId: 'alice',
    host: null,
    destIp: '192.0.2.10',
    destPort: port,
    selfAddresses: new Set(),
  });
  return `${decision.action}:${decision.rule?.id ?? '-'}`;
}

const WAIT_MS = 10_000;

function nextEvent<T>(source: RuleSource, event: 'snapshot' | 'error'): Promise<T> {
  return once(source, event, { signal: AbortSignal.timeout(WAIT_MS) }).then(([value]) => value as T);
}

export function runRuleSourceContract(name: string, open: OpenHarness): void {
  describe(`rule source contract: ${name}`, () => {
    async function start(t: { after(fn: () => unknown): void }, initial: string | null): Promise<RuleSourceHarness> {
      const harness = await open(initial);
      t.after(() => harness.cleanup());
      harness.source.on('error', () => {});
      await harness.source.start();
      return harness;
    }

    it('holds a compiled snapshot of valid rules once started', async (t) => {
      const { source } = await start(t, policyYaml(443, { rules: 3 }));
      const snap = source.current();
      assert.ok(snap);
      assert.match(snap.version, /^[0-9a-f]{12,}$/);
      assert.equal(snap.policyCount, 1);
      assert.equal(snap.ruleCount, 3);
      assert.ok(Math.abs(Date.now() - snap.loadedAt) < 60_000);
      assert.equal(decide(snap, 444), 'allow:proxies/office/rule-1');
      assert.equal(decide(snap, 80), 'deny:-');
    });

    it('is not ready while nothing is published, and becomes ready when rules appear', async (t) => {
      const { source, publish } = await start(t, null);
      assert.equal(source.current(), null);
      const loaded = nextEvent<RuleSnapshot>(source, 'snapshot');
      await publish(policyYaml(443));
      const snap = await loaded;
      assert.equal(source.current(), snap);
      assert.equal(decide(snap, 443), 'allow:proxies/office/rule-0');
    });

    it('is not ready when the only rules are broken, and says why', async (t) => {
      const harness = await open(null);
      t.after(() => harness.cleanup());
      await harness.publishBroken();
      const refused = nextEvent<Error>(harness.source, 'error');
      await harness.source.start();
      assert.ok((await refused) instanceof Error);
      assert.equal(harness.source.current(), null);
    });

    it('swaps in changed rules with a new version and announces them', async (t) => {
      const { source, publish } = await start(t, policyYaml(443));
      const first = source.current();
      assert.ok(first);
      const announced: unknown[] = [];
      const listener = (message: unknown): void => void announced.push(message);
      diagnostics.subscribe('socks4-fleet:snapshot:loaded', listener);
      t.after(() => diagnostics.unsubscribe('socks4-fleet:snapshot:loaded', listener));
      const loaded = nextEvent<RuleSnapshot>(source, 'snapshot');
      await publish(policyYaml(443, { action: 'Deny' }));
      const second = await loaded;
      assert.notEqual(second.version, first.version);
      assert.equal(source.current(), second);
      assert.equal(decide(first, 443), 'allow:proxies/office/rule-0', 'a held snapshot never changes');
      assert.equal(decide(second, 443), 'deny:proxies/office/rule-0');
      assert.ok(
        announced.some(
          (m) =>
            (m as { version: string; source: string }).version === second.version &&
            (m as { source: string }).source === source.name,
        ),
      );
    });

    it('keeps the last good snapshot when broken rules are published, and reports them', async (t) => {
      const { source, publishBroken, publish } = await start(t, policyYaml(443));
      const good = source.current();
      const errors: unknown[] = [];
      const listener = (message: unknown): void => void errors.push(message);
      diagnostics.subscribe('socks4-fleet:snapshot:error', listener);
      t.after(() => diagnostics.unsubscribe('socks4-fleet:snapshot:error', listener));
      const refused = nextEvent<Error>(source, 'error');
      await publishBroken();
      await refused;
      assert.equal(source.current(), good);
      assert.ok(errors.some((m) => (m as { source: string }).source === source.name));
      // And recovers as soon as good rules come back.
      const loaded = nextEvent<RuleSnapshot>(source, 'snapshot');
      await publish(policyYaml(8443));
      assert.equal(decide(await loaded, 8443), 'allow:proxies/office/rule-0');
    });

    it('announces nothing when the same rules are published again', async (t) => {
      const { source, publish, settle } = await start(t, policyYaml(443));
      const held = source.current();
      const seen: RuleSnapshot[] = [];
      source.on('snapshot', (snap: RuleSnapshot) => seen.push(snap));
      await publish(policyYaml(443));
      await settle();
      assert.deepEqual(seen, []);
      assert.equal(source.current(), held);
    });

    it('stops following changes after stop()', async (t) => {
      const harness = await start(t, policyYaml(443));
      const { source, publish } = harness;
      const held = source.current();
      const seen: RuleSnapshot[] = [];
      source.on('snapshot', (snap: RuleSnapshot) => seen.push(snap));
      // A running witness on the same backend gets the same file events and notices. Two changes,
      // each awaited on the witness: a stopped source that still followed would have loaded the
      // first by the time the witness has the second, however slow the machine is.
      const witness = harness.another();
      witness.on('error', () => {});
      await witness.start();
      await source.stop();
      for (const action of ['Deny', 'Allow'] as const) {
        const witnessed = nextEvent<RuleSnapshot>(witness, 'snapshot');
        await publish(policyYaml(443, { action, rules: action === 'Allow' ? 2 : 1 }));
        assert.equal(decide(await witnessed, 443), `${action.toLowerCase()}:proxies/office/rule-0`);
      }
      assert.deepEqual(seen, []);
      assert.equal(source.current(), held);
    });
  });
}
