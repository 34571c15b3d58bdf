// `socks4-fleet operator`: flags → startOperator, then run until SIGTERM/SIGINT.
import { KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parseCount, parseDuration, parseHostPort, UsageError, type CliIO } from '../src/cli/args.ts';
import { readRedisFlags, redactRedisUrl, redisFlagOptions, redisFlagsHelp } from '../src/redis/cli-options.ts';
import { createLogger } from '../src/telemetry/logging.ts';
import { startTracing } from '../src/telemetry/tracing.ts';
import { DEFAULT_RESYNC_MS, DEFAULT_WORKERS, startOperator, type Operator } from './operator.ts';

/** service.name of the operator's traces (unless OTEL_SERVICE_NAME says otherwise). */
export const OPERATOR_SERVICE_NAME = 'socks4-fleet-operator';

export const operatorHelp = `Usage: socks4-fleet operator (--redis-url URL | env REDIS_URL) [options]

Watches Socks4Policy and ClusterSocks4Policy resources (socks4-fleet.io/v1alpha1), validates and
compiles them with the proxy's own code, and publishes all of them as one rules snapshot to Redis,
where every proxy pod picks it up. It also watches Pods and publishes which namespace each pod
address belongs to: a Socks4Policy governs only its own namespace's pods, cluster policies
govern every client. Each policy gets a Ready condition; one that fails validation is reported
(Ready=False, reason InvalidSpec, and an Event) and never blocks the others. Replicas elect a
leader through a Lease; only the leader publishes. A single replica may turn election off.

Kubernetes:
  --kubeconfig FILE         credentials (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --namespaces NS,...       watch Socks4Policies and Pods only in these namespaces (default: all);
                            ClusterSocks4Policies are always watched
  --workers N               parallel reconciles (default ${DEFAULT_WORKERS})
  --resync D                re-check every policy and the snapshot this often (default ${DEFAULT_RESYNC_MS / 60_000}m; 0 = off)

Leader election:
  --no-leader-elect         for exactly one replica: lead from the start and never touch a Lease
                            (no Lease RBAC needed); two at once would both publish (default: elect)
  --lease-namespace NS      namespace of the Lease (default: $POD_NAMESPACE, else the kubeconfig's)
  --lease-name NAME         (default socks4-fleet-operator)
  --identity ID             this replica's name in the Lease (default: $POD_NAME or host-pid)
  --lease-duration D        a silent leader is replaced after this (default 15s; whole seconds)
  --renew-deadline D        a leader that cannot renew this long stops publishing (default 10s)
  --retry-period D          how often to renew or try to acquire (default 2s)

Ops:
  --ops-listen HOST:PORT    /healthz /readyz /metrics (default 127.0.0.1:9090; :0 = any free port)
  --log-level LEVEL         trace|debug|info|warn|error|silent (default info)
  -h, --help                show this help

Tracing: one trace per reconcile, exported over OTLP when the standard OTEL_* variables say so
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, ...). The published snapshot carries the
trace context of the publish, and every proxy pod links its "socks4 snapshot enforce" span to it.

${redisFlagsHelp}`;

const options = {
  ...redisFlagOptions,
  kubeconfig: { type: 'string' },
  namespaces: { type: 'string' },
  workers: { type: 'string', default: String(DEFAULT_WORKERS) },
  resync: { type: 'string', default: `${DEFAULT_RESYNC_MS / 60_000}m` },
  'leader-elect': { type: 'boolean', default: true },
  'lease-namespace': { type: 'string' },
  'lease-name': { type: 'string', default: 'socks4-fleet-operator' },
  identity: { type: 'string' },
  'lease-duration': { type: 'string', default: '15s' },
  'renew-deadline': { type: 'string', default: '10s' },
  'retry-period': { type: 'string', default: '2s' },
  'ops-listen': { type: 'string', default: '127.0.0.1:9090' },
  'log-level': { type: 'string', default: 'info' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function parseNamespaces(text: string | undefined): string[] | null {
  if (text === undefined || text === '' || text === '*' || text === 'all') return null;
  const list = text.split(',').map((n) => n.trim()).filter((n) => n !== '');
  for (const ns of list) {
    if (ns.length > 63 || !NAME_RE.test(ns)) throw new UsageError(`--namespaces: "${ns}" is not a namespace name`);
  }
  return list;
}

export async function runOperator(argv: string[], io: CliIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  // allowNegative: --no-leader-elect turns off what defaults to on.
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false, allowNegative: true });
  if (values.help) {
    io.stdout(operatorHelp);
    return 0;
  }
  const { connection, prefix } = readRedisFlags(values, env);
  const namespaces = parseNamespaces(values.namespaces);
  const leaseDurationMs = parseDuration('lease-duration', values['lease-duration']);
  const renewDeadlineMs = parseDuration('renew-deadline', values['renew-deadline']);
  const retryPeriodMs = parseDuration('retry-period', values['retry-period']);
  if (leaseDurationMs < 1000 || leaseDurationMs % 1000 !== 0) throw new UsageError('--lease-duration: whole seconds, at least 1s');
  if (!(retryPeriodMs > 0 && retryPeriodMs < renewDeadlineMs && renewDeadlineMs < leaseDurationMs)) {
    throw new UsageError('need 0 < --retry-period < --renew-deadline < --lease-duration');
  }
  const ops = parseHostPort('ops-listen', values['ops-listen']);
  const workers = parseCount('workers', values.workers);
  const resyncMs = parseDuration('resync', values.resync);

  const kubeConfig = new KubeConfig();
  try {
    if (values.kubeconfig === undefined) kubeConfig.loadFromDefault();
    else kubeConfig.loadFromFile(values.kubeconfig);
  } catch (error) {
    io.stderr(`cannot load Kubernetes credentials${values.kubeconfig === undefined ? '' : ` from ${values.kubeconfig}`}: ${(error as Error).message}\n`);
    return 1;
  }
  if (kubeConfig.getCurrentCluster() === null) {
    io.stderr('no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod\n');
    return 1;
  }
  const contextNamespace = kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace;
  const leaderElect = values['leader-elect'];
  const identity = values.identity ?? `${env.POD_NAME ?? hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;

  const logger = createLogger({ level: values['log-level'] });
  // Before the operator starts, so the first reconcile is traced.
  const tracing = await startTracing({ serviceName: OPERATOR_SERVICE_NAME, logger });
  let operator: Operator;
  try {
    operator = await startOperator({
      kubeConfig,
      redis: connection,
      prefix,
      namespaces,
      identity,
      lease: leaderElect ? {
        namespace: values['lease-namespace'] ?? env.POD_NAMESPACE ?? contextNamespace ?? 'default',
        name: values['lease-name'],
        leaseDurationMs,
        renewDeadlineMs,
        retryPeriodMs,
      } : null,
      workers,
      resyncMs,
      ops,
      logger,
    });
  } catch (error) {
    io.stderr(`socks4-fleet operator: cannot start: ${(error as Error).message}\n`);
    await tracing.shutdown();
    logger.flush();
    return 1;
  }
  const opsAddress = operator.opsAddress === null ? null : `${operator.opsAddress.address}:${operator.opsAddress.port}`;
  logger.info({
    identity, leaderElection: leaderElect, namespaces: namespaces ?? 'all', redis: redactRedisUrl(connection.url), prefix, ops: opsAddress,
  }, 'socks4-fleet operator started');

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'stopping');
      process.removeListener('SIGTERM', stop);
      process.removeListener('SIGINT', stop);
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await operator.stop();
  await tracing.shutdown(); // in-flight reconciles have ended: their spans are in the flush
  logger.info({ identity }, 'stopped');
  logger.flush();
  return 0;
}
