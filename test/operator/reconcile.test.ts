// The operator's pure decisions: snapshot contents, finalizer steps, status and events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setCondition, type Condition } from '../../operator/conditions.ts';
import {
  FINALIZER,
  planPolicy,
  planSnapshot,
  recordPublished,
  REPORT_NOTE,
  type ObservedPolicy,
  type PolicyStatus,
  type PublishedSnapshot,
} from '../../operator/reconcile.ts';
import { buildSnapshotDocument } from '../../src/rules/snapshot-document.ts';

const NOW = new Date('2030-01-02T03:04:05.678Z');
const LATER = new Date('2030-01-02T04:00:00.000Z');

const allowWeb = { rules: [{ name: 'web', action: 'Allow', to: { ports: ['443'] } }], priority: 100 };
const twoRules = {
  rules: [
    { name: 'web', action: 'Allow', to: { ports: ['443'] } },
    { name: 'rest', action: 'Deny' },
  ],
};
// Passes the CRD schema, fails the proxy's validation: limits only make sense on Allow rules.
const denyWithLimits = {
  rules: [{ name: 'capped', action: 'Deny', limits: { concurrentSessions: { max: 5, key: 'Rule' } } }],
};

function observed(
  name: string,
  spec: unknown,
  extra: {
    namespace?: string;
    generation?: number;
    uid?: string;
    finalizer?: boolean;
    deleting?: boolean;
    status?: unknown;
  } = {},
): ObservedPolicy {
  return {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'Socks4Policy',
    metadata: {
      name,
      namespace: extra.namespace ?? 'team',
      uid: extra.uid ?? `uid-${name}`,
      generation: extra.generation ?? 1,
      resourceVersion: '7',
      ...(extra.finalizer === false ? {} : { finalizers: [FINALIZER] }),
      ...(extra.deleting === true ? { deletionTimestamp: '2030-01-01T00:00:00Z' } : {}),
    },
    spec,
    ...(extra.status === undefined ? {} : { status: extra.status }),
  };
}

function publish(
  objs: readonly ObservedPolicy[],
  previous: PublishedSnapshot | null,
  version: string,
): PublishedSnapshot {
  const desired = planSnapshot(objs, previous);
  return recordPublished(desired, version, new Map(objs.map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, o])));
}

/** The object as it reads back after the operator wrote `status`. */
function withStatus(obj: ObservedPolicy, status: PolicyStatus | null): ObservedPolicy {
  assert.ok(status !== null);
  return { ...obj, status: JSON.parse(JSON.stringify(status)) };
}

test('a new policy gets the finalizer before anything else', () => {
  const plan = planPolicy(observed('p', allowWeb, { finalizer: false }), null, NOW);
  assert.deepEqual(plan, { action: 'add-finalizer', status: null, event: null });
});

test('nothing is claimed about a policy before this operator published a snapshot', () => {
  assert.deepEqual(planPolicy(observed('p', allowWeb), null, NOW), { action: 'none', status: null, event: null });
  assert.deepEqual(planPolicy(observed('bad', denyWithLimits), null, NOW), {
    action: 'none',
    status: null,
    event: null,
  });
});

test('a published policy becomes Ready=True with observedGeneration, its rule count and the snapshot that carries it', () => {
  const obj = observed('p', twoRules, { generation: 3 });
  const published = publish([obj], null, 'aaaaaaaaaaaa');
  const plan = planPolicy(obj, published, NOW);
  assert.equal(plan.action, 'none');
  assert.equal(plan.event, null);
  assert.deepEqual(plan.status, {
    observedGeneration: 3,
    ruleCount: 2,
    snapshotVersion: 'aaaaaaaaaaaa',
    enforcement: 'Enforce',
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Published',
        message: 'published in rules snapshot aaaaaaaaaaaa',
        observedGeneration: 3,
        lastTransitionTime: '2030-01-02T03:04:05Z',
      },
    ],
  });
  // Once the status reads back, there is nothing left to do.
  assert.deepEqual(planPolicy(withStatus(obj, plan.status), published, LATER), {
    action: 'none',
    status: null,
    event: null,
  });
});

test('a generation not yet in the published snapshot gets no status until it is', () => {
  const v1 = observed('p', allowWeb, { generation: 1 });
  const published = publish([v1], null, 'aaaaaaaaaaaa');
  const v2 = observed('p', twoRules, { generation: 2 });
  assert.equal(planPolicy(v2, published, NOW).status, null);
  const next = publish([v2], published, 'bbbbbbbbbbbb');
  assert.equal(planPolicy(v2, next, NOW).status?.snapshotVersion, 'bbbbbbbbbbbb');
});

test('an unchanged policy keeps the snapshot version that first carried it when other policies change', () => {
  const a = observed('a', allowWeb);
  const first = publish([a], null, 'aaaaaaaaaaaa');
  const second = publish([a, observed('b', twoRules)], first, 'bbbbbbbbbbbb');
  assert.equal(second.entries.get('team/a')?.since, 'aaaaaaaaaaaa');
  assert.equal(second.entries.get('team/b')?.since, 'bbbbbbbbbbbb');
});

test('after a restart, a Ready status that names the snapshot of this generation is trusted (no status rewrite)', () => {
  const obj = observed('p', allowWeb, { generation: 4 });
  const ready = planPolicy(obj, publish([obj], null, 'aaaaaaaaaaaa'), NOW).status;
  const current = withStatus(obj, ready);
  const afterRestart = publish([current], null, 'cccccccccccc');
  assert.equal(afterRestart.entries.get('team/p')?.since, 'aaaaaaaaaaaa');
  assert.equal(planPolicy(current, afterRestart, LATER).status, null);
});

test('a semantically invalid policy is Ready=False with a reason, a field-named message and a Warning event', () => {
  const bad = observed('bad', denyWithLimits, { generation: 2 });
  const published = publish([bad, observed('good', allowWeb)], null, 'aaaaaaaaaaaa');
  assert.deepEqual([...published.entries.keys()], ['team/good'], 'the bad policy is left out, the good one published');
  const plan = planPolicy(bad, published, NOW);
  const ready = plan.status?.conditions[0];
  assert.equal(ready?.status, 'False');
  assert.equal(ready?.reason, 'InvalidSpec');
  assert.equal(ready?.message, 'spec.rules[0].limits: only Allow rules take limits (not published)');
  assert.equal(plan.status?.observedGeneration, 2);
  assert.equal(plan.status?.ruleCount, 0);
  assert.equal(plan.status?.snapshotVersion, undefined);
  assert.deepEqual(plan.event, { type: 'Warning', reason: 'InvalidSpec', message: ready?.message });
  // Reported once: the same refusal read back produces neither a write nor another event.
  assert.deepEqual(planPolicy(withStatus(bad, plan.status), published, LATER), {
    action: 'none',
    status: null,
    event: null,
  });
});

test('one bad policy never blocks the others: the rest form a snapshot the publisher accepts', () => {
  const objs = [
    observed('a', allowWeb),
    observed('bad', denyWithLimits),
    observed('c', twoRules, { namespace: 'other' }),
  ];
  const desired = planSnapshot(objs, null);
  assert.deepEqual(
    desired.policies.map((p) => `${p.metadata.namespace}/${p.metadata.name}`),
    ['other/c', 'team/a'],
  );
  const { document } = buildSnapshotDocument(desired.policies);
  assert.equal(document.policies.length, 2);
});

test('an update that breaks a published policy keeps the last good generation in the snapshot and says so', () => {
  const good = observed('p', twoRules, { generation: 1 });
  const first = publish([good], null, 'aaaaaaaaaaaa');
  const broken = observed('p', denyWithLimits, { generation: 2 });
  const desired = planSnapshot([broken], first);
  assert.equal(desired.entries.get('team/p')?.kept, true);
  assert.deepEqual(desired.policies[0]?.spec, twoRules);
  const second = recordPublished(desired, 'aaaaaaaaaaaa', new Map());
  const plan = planPolicy(broken, second, NOW);
  assert.match(
    plan.status?.conditions[0]?.message ?? '',
    /only Allow rules take limits \(the fleet keeps generation 1\)$/,
  );
  assert.equal(plan.status?.ruleCount, 2);
  assert.equal(plan.status?.snapshotVersion, 'aaaaaaaaaaaa');
  // A policy deleted and created again under the same name is a different object: nothing kept.
  assert.equal(planSnapshot([observed('p', denyWithLimits, { uid: 'new' })], first).entries.size, 0);
});

test('deleting: wait while the snapshot carries the policy, then drop the finalizer', () => {
  const live = observed('p', allowWeb);
  const published = publish([live], null, 'aaaaaaaaaaaa');
  const deleting = observed('p', allowWeb, { deleting: true });
  assert.equal(planPolicy(deleting, null, NOW).action, 'await-snapshot', 'unknown snapshot: wait');
  assert.equal(planPolicy(deleting, published, NOW).action, 'await-snapshot');
  const after = publish([deleting], published, 'bbbbbbbbbbbb');
  assert.equal(after.entries.size, 0, 'a deleting policy leaves the snapshot');
  assert.deepEqual(planPolicy(deleting, after, NOW), { action: 'remove-finalizer', status: null, event: null });
  assert.equal(planPolicy(observed('p', allowWeb, { deleting: true, finalizer: false }), after, NOW).action, 'none');
});

test('policies without the finalizer are not published, unless the fleet already carries them', () => {
  const fresh = observed('fresh', allowWeb, { finalizer: false });
  assert.equal(planSnapshot([fresh], null).entries.size, 0);
  const seeded = publish([observed('old', allowWeb)], null, 'aaaaaaaaaaaa');
  const lostFinalizer = observed('old', allowWeb, { finalizer: false });
  assert.deepEqual([...planSnapshot([lostFinalizer, fresh], seeded).entries.keys()], ['team/old']);
});

test('lastTransitionTime moves only when the status flips', () => {
  const base: Condition[] = [];
  const refused = setCondition(base, { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'one' }, NOW);
  const reworded = setCondition(
    refused,
    { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'two' },
    LATER,
  );
  assert.equal(reworded[0]?.lastTransitionTime, '2030-01-02T03:04:05Z');
  assert.equal(reworded[0]?.message, 'two');
  const ready = setCondition(reworded, { type: 'Ready', status: 'True', reason: 'Published', message: 'ok' }, LATER);
  assert.equal(ready[0]?.lastTransitionTime, '2030-01-02T04:00:00Z');
  assert.equal(ready.length, 1);
  const other = setCondition(ready, { type: 'Other', status: 'Unknown', reason: 'Why', message: '' }, NOW);
  assert.deepEqual(
    other.map((c) => c.type),
    ['Ready', 'Other'],
  );
});

test('a very long refusal is truncated to fit the status', () => {
  const rules = Array.from({ length: 400 }, (_, i) => ({ name: `r${i}`, action: 'Deny', ident: 'Required' }));
  const bad = observed('many', { rules });
  const plan = planPolicy(bad, publish([], null, 'aaaaaaaaaaaa'), NOW);
  const message = plan.status?.conditions[0]?.message ?? '';
  assert.ok(message.length <= 4096 && message.endsWith('...'), `${message.length}`);
  assert.match(message, /^spec\.rules\[0\]\.ident: only Allow rules take ident checks/);
});

test('a Report policy is Ready with enforcement Report in its status and says so; the one-word switch changes both', () => {
  const report = observed('trial', { ...allowWeb, enforcement: 'Report' }, { generation: 1 });
  const published = publish([report], null, 'aaaaaaaaaaaa');
  const plan = planPolicy(report, published, NOW);
  assert.equal(plan.status?.enforcement, 'Report');
  assert.equal(plan.status?.conditions[0]?.message, `published in rules snapshot aaaaaaaaaaaa${REPORT_NOTE}`);
  assert.deepEqual(planPolicy(withStatus(report, plan.status), published, LATER), {
    action: 'none',
    status: null,
    event: null,
  });
  const enforced = observed('trial', { ...allowWeb, enforcement: 'Enforce' }, { generation: 2, status: plan.status });
  const next = planPolicy(enforced, publish([enforced], published, 'bbbbbbbbbbbb'), LATER);
  assert.equal(next.status?.enforcement, 'Enforce');
  assert.equal(next.status?.conditions[0]?.message, 'published in rules snapshot bbbbbbbbbbbb');
});
