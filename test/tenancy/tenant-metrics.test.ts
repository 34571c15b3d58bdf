// socks4_tenant_sessions_total: the client's namespace as a label, bounded so that a cluster that
// keeps creating namespaces cannot grow the proxy's series without limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { channels, type SessionInfo } from '../../src/telemetry/events.ts';
import { createProxyMetrics, MAX_NAMESPACE_LABELS, OTHER_NAMESPACES } from '../../src/telemetry/metrics.ts';

function ended(namespace: string | null, tier: string | null, reason: string | null): SessionInfo {
  return {
    id: 's',
    startedAt: 0,
    clientAddress: '127.0.0.1',
    clientPort: 1,
    localAddress: '127.0.0.1',
    localPort: 1080,
    state: 'closed',
    command: 'connect',
    userId: 'u',
    host: null,
    destIp: '127.0.0.1',
    destPort: 80,
    ruleId: null,
    namespace,
    tier,
    snapshotVersion: 'abcdef012345',
    replyCode: reason === null ? 90 : 91,
    reason: reason as SessionInfo['reason'],
    closeCause: null,
    handshakeMs: 1,
    bytesFromClient: 0,
    bytesToClient: 0,
  };
}

test(`namespaces get their own label value up to ${MAX_NAMESPACE_LABELS}; later ones share "${OTHER_NAMESPACES}"`, async () => {
  const metrics = createProxyMetrics({ activeSessions: () => 0, snapshot: () => null });
  try {
    for (let i = 0; i < MAX_NAMESPACE_LABELS + 50; i++)
      channels.sessionEnd.publish(ended(`team-${i}`, 'Namespace', null));
    channels.sessionEnd.publish(ended('team-0', 'Cluster', 'RuleDenied'));
    channels.sessionEnd.publish(ended(null, 'Default', 'NoRuleMatched'));
    channels.sessionEnd.publish(ended(null, null, 'ClientAborted')); // never decided: not counted
    const { values } = await (
      metrics.registry.getSingleMetric('socks4_tenant_sessions_total') as {
        get(): Promise<{ values: { labels: Record<string, string>; value: number }[] }>;
      }
    ).get();
    const namespaces = new Set(values.map((v) => v.labels.client_namespace));
    assert.equal(namespaces.size, MAX_NAMESPACE_LABELS + 2); // + "_other" + "" (no pod)
    assert.deepEqual(
      values.find((v) => v.labels.client_namespace === OTHER_NAMESPACES),
      { labels: { client_namespace: OTHER_NAMESPACES, tier: 'Namespace', decision: 'allow' }, value: 50 },
    );
    assert.equal(
      values.find((v) => v.labels.client_namespace === 'team-0' && v.labels.tier === 'Cluster')?.labels.decision,
      'deny',
    );
    assert.equal(values.find((v) => v.labels.client_namespace === '')?.labels.tier, 'Default');
    assert.equal(
      values.reduce((n, v) => n + v.value, 0),
      MAX_NAMESPACE_LABELS + 52,
    );
  } finally {
    metrics.close();
  }
});
