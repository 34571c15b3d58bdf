// Prometheus metrics of the operator, on its own registry (served at /metrics). Labels are
// bounded sets (kind, result): never policy names, which users create at will.
import client from 'prom-client';

export interface OperatorMetrics {
  readonly registry: client.Registry;
  readonly reconciles: client.Counter<'kind' | 'result'>;
  readonly reconcileSeconds: client.Histogram<'kind'>;
  readonly publishes: client.Counter<'result'>;
  readonly snapshotPolicies: client.Gauge;
  readonly snapshotRules: client.Gauge;
  readonly refusedPolicies: client.Gauge;
  readonly informerRestarts: client.Counter;
  readonly snapshotPublishedAt: client.Gauge;
}

export interface OperatorGauges {
  readonly queueDepth: () => number;
  readonly isLeader: () => boolean;
  readonly watchedPolicies: () => number;
}

export function createOperatorMetrics(gauges: OperatorGauges): OperatorMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const registers = [registry];
  new client.Gauge({
    name: 'socks4_operator_leader',
    help: '1 while this replica holds the leader Lease and may publish, else 0.',
    registers,
    collect() {
      this.set(gauges.isLeader() ? 1 : 0);
    },
  });
  new client.Gauge({
    name: 'socks4_operator_queue_depth',
    help: 'Keys waiting for a reconcile worker.',
    registers,
    collect() {
      this.set(gauges.queueDepth());
    },
  });
  new client.Gauge({
    name: 'socks4_operator_watched_policies',
    help: 'Socks4Policy objects in the informer cache.',
    registers,
    collect() {
      this.set(gauges.watchedPolicies());
    },
  });
  return {
    registry,
    reconciles: new client.Counter({
      name: 'socks4_operator_reconciles_total',
      help: 'Reconciles by kind (policy, snapshot) and result (ok, error).',
      labelNames: ['kind', 'result'] as const,
      registers,
    }),
    reconcileSeconds: new client.Histogram({
      name: 'socks4_operator_reconcile_duration_seconds',
      help: 'Time one reconcile took, by kind.',
      labelNames: ['kind'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    publishes: new client.Counter({
      name: 'socks4_operator_snapshot_publishes_total',
      help: 'Snapshot publishes by result: published (new version), unchanged, error.',
      labelNames: ['result'] as const,
      registers,
    }),
    snapshotPolicies: new client.Gauge({
      name: 'socks4_operator_snapshot_policies',
      help: 'Policies in the last published snapshot.',
      registers,
    }),
    snapshotRules: new client.Gauge({
      name: 'socks4_operator_snapshot_rules',
      help: 'Rules in the last published snapshot.',
      registers,
    }),
    refusedPolicies: new client.Gauge({
      name: 'socks4_operator_refused_policies',
      help: 'Watched policies whose current generation failed validation (Ready=False, InvalidSpec).',
      registers,
    }),
    informerRestarts: new client.Counter({
      name: 'socks4_operator_informer_restarts_total',
      help: 'Times a policy watch failed and was restarted with a fresh list.',
      registers,
    }),
    snapshotPublishedAt: new client.Gauge({
      name: 'socks4_operator_snapshot_published_timestamp_seconds',
      help: 'When this replica last published (or confirmed) the snapshot, Unix time.',
      registers,
    }),
  };
}
