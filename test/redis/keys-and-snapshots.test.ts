// Pure parts: the key layout (encoding, hash tags) and the snapshot document (versions, validation).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { LimitKey } from '../../src/limits/types.ts';
import { loadPolicyText } from '../../src/policy/load.ts';
import type { Socks4Policy } from '../../src/policy/types.ts';
import { checkPrefix, hashTagOf } from '../../src/redis/keys.ts';
import { encodeKeyPart } from '../../src/limits/keys.ts';
import { limitKey } from '../../src/limits/redis-keys.ts';
import { ruleKeys } from '../../src/rules/redis-keys.ts';
import {
  buildSnapshotDocument,
  parseSnapshotDocument,
  SnapshotInvalidError,
  stringifyCanonical,
} from '../../src/rules/snapshot-document.ts';
import { policyYaml } from '../rules/rule-source-contract.ts';

const policies = (yaml: string): Socks4Policy[] => {
  const { policies: loaded, issues } = loadPolicyText(yaml, 'test');
  assert.deepEqual(issues, []);
  return loaded;
};

describe('redis key layout', () => {
  it('lays out rule keys under the prefix and schema version, in one slot', () => {
    const keys = ruleKeys('fleet-a');
    assert.equal(keys.pointer, 'fleet-a:v1:{fleet-a:rules}:current');
    assert.equal(keys.snapshot('0123456789ab'), 'fleet-a:v1:{fleet-a:rules}:snapshot:0123456789ab');
    assert.equal(keys.channel, 'fleet-a:v1:rules:notice');
    assert.equal(hashTagOf(keys.pointer), hashTagOf(keys.snapshot('0123456789ab')));
    assert.throws(() => keys.snapshot('../x'), /not a snapshot version/);
  });

  it('refuses prefixes that could break the layout', () => {
    for (const bad of ['', 'a{b}', 'a b', 'a\nb', '{x', '-x', 'x'.repeat(101)])
      assert.notEqual(checkPrefix(bad), null, JSON.stringify(bad));
    for (const good of ['socks4-fleet', 'prod.eu-1', 'team:proxies', 'A_1'])
      assert.equal(checkPrefix(good), null, good);
    assert.throws(() => ruleKeys('a{b'));
  });

  it('gives distinct (rule, kind, value) triples distinct keys, all tagged by their rule', () => {
    const kinds: LimitKey[] = ['Rule', 'SourceIP', 'UserID'];
    const value = fc.string({ unit: 'binary', maxLength: 40 });
    fc.assert(
      fc.property(
        value,
        value,
        fc.constantFrom(...kinds),
        value,
        value,
        fc.constantFrom(...kinds),
        (r1, v1, k1, r2, v2, k2) => {
          const a = limitKey('p', 'rate', k1, { ruleId: r1, sourceIp: v1, userId: v1 });
          const b = limitKey('p', 'rate', k2, { ruleId: r2, sourceIp: v2, userId: v2 });
          const same = r1 === r2 && k1 === k2 && (k1 === 'Rule' || v1.toWellFormed() === v2.toWellFormed());
          assert.equal(a === b, same);
          assert.equal(hashTagOf(a), `p:${encodeKeyPart(r1)}`);
          assert.doesNotMatch(a.slice(a.indexOf('}') + 1), /[{}\s\u0000-\u001f]/);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('keeps the limit kinds of one rule apart', () => {
    const req = { ruleId: 'ns/p/r', sourceIp: '10.0.0.1', userId: '10.0.0.1' };
    const keys = new Set(
      (['rate', 'sessions', 'bandwidth'] as const).flatMap((kind) =>
        (['Rule', 'SourceIP', 'UserID'] as const).map((k) => limitKey('p', kind, k, req)),
      ),
    );
    assert.equal(keys.size, 9);
  });
});

describe('snapshot document', () => {
  it('derives the version from content only: order of keys and policies and Kubernetes bookkeeping do not count', () => {
    const a = policies(`${policyYaml(443, { name: 'a' })}---\n${policyYaml(80, { name: 'b' })}`);
    const b = [...a].reverse().map((p) => ({
      spec: p.spec,
      kind: p.kind,
      apiVersion: p.apiVersion,
      metadata: { ...p.metadata, resourceVersion: '42', generation: 7, uid: 'u' },
      status: { ready: true },
    })) as Socks4Policy[];
    const one = buildSnapshotDocument(a);
    assert.equal(one.document.version, buildSnapshotDocument(b).document.version);
    assert.notEqual(
      one.document.version,
      buildSnapshotDocument(policies(policyYaml(444, { name: 'a' }))).document.version,
    );
    assert.equal(stringifyCanonical({ b: 1, a: [{ d: 1, c: 2 }] }), '{"a":[{"c":2,"d":1}],"b":1}');
  });

  it('round-trips, carrying createdAt, source and the reserved traceparent', () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const { document, json } = buildSnapshotDocument(policies(policyYaml(443, { rules: 2 })), {
      source: 'test',
      traceparent,
      createdAt: '2026-01-01T00:00:00.000Z',
    });
    const parsed = parseSnapshotDocument(json, document.version, 1234);
    assert.equal(parsed.snapshot.version, document.version);
    assert.equal(parsed.snapshot.ruleCount, 2);
    assert.equal(parsed.snapshot.loadedAt, 1234);
    assert.equal(parsed.document.traceparent, traceparent);
    assert.equal(parsed.document.source, 'test');
    assert.equal(parsed.document.createdAt, '2026-01-01T00:00:00.000Z');
  });

  it('refuses to publish invalid or duplicate policies, naming every issue', () => {
    const bad = {
      apiVersion: 'socks4-fleet.io/v1alpha1',
      kind: 'Socks4Policy',
      metadata: { name: 'x' },
      spec: { rules: [{ name: 'r', action: 'Maybe' }] },
    };
    const error = (() => {
      try {
        buildSnapshotDocument([bad as unknown as Socks4Policy, ...policies(policyYaml(1)), ...policies(policyYaml(2))]);
      } catch (e) {
        return e;
      }
      return null;
    })();
    assert.ok(error instanceof SnapshotInvalidError);
    assert.ok(error.issues.some((i) => i.path.includes('spec.rules[0].action')));
    assert.ok(error.issues.some((i) => /duplicate policy proxies\/office/.test(i.message)));
  });

  it('refuses stored documents that are not JSON, of another schema or version, or invalid', () => {
    const { document, json } = buildSnapshotDocument(policies(policyYaml(443)));
    const v = document.version;
    const doc = JSON.parse(json) as Record<string, unknown>;
    const cases: [string, RegExp][] = [
      ['{', /not JSON/],
      ['[]', /not an object/],
      [JSON.stringify({ ...doc, schema: 2 }), /schema 2/],
      [json, /holds version/],
      [JSON.stringify({ ...doc, policies: 'x' }), /no policies/],
      [JSON.stringify({ ...doc, policies: [{ kind: 'Socks4Policy' }] }), /invalid/],
    ];
    for (const [text, message] of cases) {
      const expected = message.source === 'holds version' ? 'ffffffffffff' : v;
      assert.throws(
        () => parseSnapshotDocument(text, expected),
        (e: unknown) => e instanceof SnapshotInvalidError && message.test(e.message),
        text.slice(0, 40),
      );
    }
  });
});
