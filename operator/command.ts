// `socks4-fleet operator`: flags → startOperator, then run until SIGTERM/SIGINT.
import { KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  DEFAULT_LOG_LEVEL,
  DEFAULT_OPS_LISTEN,
  parseCount,
  parseHostPort,
  parseLogLevel,
  UsageError,
  type CliIO,
} from '../src/cli/args.ts';
import { listenError } from '../src/cli/proxy-lifecycle.ts';
import { durationHelp, durationOption, readDuration } from '../src/cli/durations.ts';
import { readRedisFlags, redactRedisUrl, redisFlagOptions, redisFlagsHelp } from '../src/cli/redis-flags.ts';
import { createLogger } from '../src/telemetry/logging.ts';
import { startTracing } from '../src/telemetry/tracing.ts';
import { DEFAULT_WORKERS, startOperator, type Operator } from './operator.ts';
import { errorMessage } from '../src/errors.ts';

/** service.name of the operator's traces (unless OTEL_SERVICE_NAME says otherwise). */
export const OPERATOR_SERVICE_NAME = 'socks4-fleet-operator';
/** The Lease replicas elect a leader on, unless --lease-name says otherwise. */
const DEFAULT_LEASE_NAME = 'socks4-fleet-operator';

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
${durationHelp(['resync'])}
Leader election:
  --no-leader-elect         for exactly one replica: lead from the start and never touch a Lease
                            (no Lease RBAC needed); two at once would both publish (default: elect)
  --lease-namespace NS      namespace of the Lease (default: $POD_NAMESPACE, else the kubeconfig's)
  --lease-name NAME         (default ${DEFAULT_LEASE_NAME})
  --identity ID             this replica's name in the Lease (default: $POD_NAME or host-pid)
${durationHelp(['lease-duration', 'renew-deadline', 'retry-period'])}
Ops:
  --ops-listen HOST:PORT    /healthz /readyz /metrics (default ${DEFAULT_OPS_LISTEN}; :0 = any free port)
  --log-level LEVEL         trace|debug|info|warn|error|silent (default ${DEFAULT_LOG_LEVEL})
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
  resync: durationOption('resync'),
  'leader-elect': { type: 'boolean', default: true },
  'lease-namespace': { type: 'string' },
  'lease-name': { type: 'string', default: DEFAULT_LEASE_NAME },
  identity: { type: 'string' },
  'lease-duration': durationOption('lease-duration'),
  'renew-deadline': durationOption('renew-deadline'),
  'retry-period': durationOption('retry-period'),
  'ops-listen': { type: 'string', default: DEFAULT_OPS_LISTEN },
  'log-level': { type: 'string', default: DEFAULT_LOG_LEVEL },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Whether loadFromDefault() has anything real to load (it invents localhost:8080 otherwise). */
function hasKubeCredentials(env: NodeJS.ProcessEnv): boolean {
  if ((env.KUBECONFIG ?? '') !== '') return true;
  if (existsSync(join(env.HOME ?? homedir(), '.kube', 'config'))) return true;
  return (env.KUBERNETES_SERVICE_HOST ?? '') !== '' && existsSync(SERVICE_ACCOUNT_TOKEN);
}

const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function parseNamespaces(text: string | undefined): string[] | null {
  if (text === undefined || text === '' || text === '*' || text === 'all') return null;
  const list = text
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
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
  const leaseDurationMs = readDuration('lease-duration', values['lease-duration']);
  const renewDeadlineMs = readDuration('renew-deadline', values['renew-deadline']);
  const retryPeriodMs = readDuration('retry-period', values['retry-period']);
  if (leaseDurationMs < 1000 || leaseDurationMs % 1000 !== 0)
    throw new UsageError('--lease-duration: whole seconds, at least 1s');
  if (!(retryPeriodMs > 0 && retryPeriodMs < renewDeadlineMs && renewDeadlineMs < leaseDurationMs)) {
    throw new UsageError('need 0 < --retry-period < --renew-deadline < --lease-duration');
  }
  const ops = parseHostPort('ops-listen', values['ops-listen']);
  const workers = parseCount('workers', values.workers);
  const resyncMs = readDuration('resync', values.resync);
  const logLevel = parseLogLevel(values['log-level']);

  const kubeConfig = new KubeConfig();
  if (values.kubeconfig === undefined && !hasKubeCredentials(env)) {
    // loadFromDefault() would fall back to http://localhost:8080 and relist there forever.
    io.stderr(
      `socks4-fleet operator: no Kubernetes credentials found: no --kubeconfig, no $KUBECONFIG, no ${join(env.HOME ?? homedir(), '.kube', 'config')} and no in-cluster service account (KUBERNETES_SERVICE_HOST and ${SERVICE_ACCOUNT_TOKEN}); pass --kubeconfig FILE, or run it in a pod\n`,
    );
    return 1;
  }
  try {
    if (values.kubeconfig === undefined) kubeConfig.loadFromDefault();
    else kubeConfig.loadFromFile(values.kubeconfig);
  } catch (error) {
    io.stderr(
      `cannot load Kubernetes credentials${values.kubeconfig === undefined ? '' : ` from ${values.kubeconfig}`}: ${errorMessage(error)}\n`,
    );
    return 1;
  }
  if (kubeConfig.getCurrentCluster() === null) {
    io.stderr('no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod\n');
    return 1;
  }
  const contextNamespace = kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace;
  const leaderElect = values['leader-elect'];
  const identity = values.identity ?? `${env.POD_NAME ?? hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;

  const logger = createLogger({ level: logLevel });
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
      lease: leaderElect
        ? {
            namespace: values['lease-namespace'] ?? env.POD_NAMESPACE ?? contextNamespace ?? 'default',
            name: values['lease-name'],
            leaseDurationMs,
            renewDeadlineMs,
            retryPeriodMs,
          }
        : null,
      workers,
      resyncMs,
      ops,
      logger,
    });
  } catch (error) {
    const { code, syscall } = error as NodeJS.ErrnoException;
    const message =
      syscall === 'listen' || code === 'EADDRINUSE'
        ? listenError(
            'ops-listen',
            values['ops-listen'],
            argv.every((a) => !a.startsWith('--ops-listen')),
            error as NodeJS.ErrnoException,
          ).message
        : `cannot start: ${errorMessage(error)}`;
    io.stderr(`socks4-fleet operator: ${message}\n`);
    await tracing.shutdown();
    logger.flush();
    return 1;
  }
  const opsAddress = operator.opsAddress === null ? null : `${operator.opsAddress.address}:${operator.opsAddress.port}`;
  logger.info(
    {
      identity,
      leaderElection: leaderElect,
      namespaces: namespaces ?? 'all',
      redis: redactRedisUrl(connection.url),
      prefix,
      ops: opsAddress,
    },
    'socks4-fleet operator started',
  );

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
