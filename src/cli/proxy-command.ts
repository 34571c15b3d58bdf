// `socks4-fleet proxy`: wires a rule source, a limiter, the SOCKS listener, telemetry and the
// ops endpoints together, and drains on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { createMemoryLimiter } from '../limits/memory-limiter.ts';
import type { Limiter } from '../limits/types.ts';
import { startOpsServer } from '../ops/ops-server.ts';
import { findRedisUrl } from './redis-flags.ts';
import { FileRuleSource } from '../rules/file-source.ts';
import type { RuleSource } from '../rules/types.ts';
import { createProxyServer, localAddresses } from '../server/proxy-server.ts';
import { defaultServerConfig, type ServerConfig } from '../server/session-env.ts';
import { createResolver } from '../server/resolver.ts';
import { sourceLimit } from '../server/slot-pool.ts';
import {
  configuredRedisSpecs,
  kubernetesApiSpec,
  parseEndpointSpec,
  startFleetGuard,
  type EndpointSpec,
} from '../server/fleet-guard.ts';
import { GuardedRange } from '../policy/guard.ts';
import { formatIpv4 } from '../policy/ip.ts';
import { createLogger, logEvents } from '../telemetry/logging.ts';
import { createProxyMetrics } from '../telemetry/metrics.ts';
import { startTracing } from '../telemetry/tracing.ts';
import { durationHelp, durationOption, readDuration } from './durations.ts';
import {
  DEFAULT_LOG_LEVEL,
  DEFAULT_OPS_LISTEN,
  parseCount,
  parseHostPort,
  parseLogLevel,
  parseShare,
  StartupError,
  UsageError,
  type CliIO,
} from './args.ts';
import { awaitShutdown, listenError } from './proxy-lifecycle.ts';
import { openRedisMode, redisModeHelp, redisModeOptions, watchRedisMode } from './redis-mode.ts';
import { maskRedisUrl } from '../redis/problems.ts';
import path from 'node:path';
import { runSupervisor, workerLink } from './workers.ts';
import { errorMessage } from '../errors.ts';

/**
 * The defaults of the proxy's other flags, read by `options` and by the help text below; the
 * server's own knobs come from defaultServerConfig and the durations from durations.ts.
 */
const DEFAULTS = {
  listen: '127.0.0.1:1080',
  'ops-listen': DEFAULT_OPS_LISTEN,
  'max-sessions': String(defaultServerConfig.maxSessions),
  'max-handshakes': String(defaultServerConfig.maxHandshakes),
  'max-pending': String(defaultServerConfig.maxPending),
  'source-share': String(defaultServerConfig.sourceShare),
  'dns-max-in-flight': '256',
  'ident-port': String(defaultServerConfig.identPort),
  workers: '1',
  'log-level': DEFAULT_LOG_LEVEL,
} as const;

export const proxyHelp = `Usage: socks4-fleet proxy --listen HOST:PORT (--policy-file FILE | --redis-url URL | env REDIS_URL) [options]

Serves SOCKS4 and SOCKS4a (CONNECT and BIND).

Rules:
  --policy-file FILE        Socks4Policy YAML (multi-document); reloaded when it changes and on
                            SIGHUP
  --allow-empty             accept a policy file with no rules (every request refused); without
                            it an empty file is refused at start and on reload
  --redis-url URL           shared rules and fleet-wide limits from Redis (see below); without
                            --policy-file, env REDIS_URL does the same (and is ignored with it)

Listeners:
  --listen HOST:PORT        SOCKS listener (default ${DEFAULTS.listen})
  --ops-listen HOST:PORT    /healthz /readyz /metrics (default ${DEFAULTS['ops-listen']}; :0 = any free port)
  --proxy-protocol          expect a PROXY protocol v1/v2 header on every connection
  --bind-address IP         address BIND listeners use (default: the one the client reached)

SSRF guard (besides the address classes and the proxy's own addresses, which are automatic;
each of these opens only to a rule naming exactly its /32):
  --guard-endpoint HOST[:PORT]  an endpoint of the fleet's own infrastructure to guard even
                            inside an opened range (every port unless PORT); repeatable. The
                            Redis endpoints in use and KUBERNETES_SERVICE_HOST are guarded anyway

Timeouts (durations carry a unit: 500ms, 10s, 2m, 1h; 0 = off only where it says so):
${durationHelp(['handshake-timeout', 'dns-timeout', 'limits-timeout', 'connect-timeout', 'bind-timeout', 'idle-timeout', 'ident-timeout', 'drain-grace'])}
Capacity:
  --max-sessions N          open sessions (default ${DEFAULTS['max-sessions']})
  --max-handshakes N        sessions reading their request (default ${DEFAULTS['max-handshakes']}); when full the
                            oldest yields (91, TooManyHandshakes)
  --max-pending N           sessions past their request awaiting DNS, limits, ident, the
                            upstream connect or a BIND peer (default ${DEFAULTS['max-pending']}); when full the
                            oldest yields (91, TooManyPending)
  --source-share F          fraction of each of those pools, and of DNS queries in flight,
                            one client address may hold (default ${DEFAULTS['source-share']})
  --dns-max-in-flight N     DNS queries in flight at once (default ${DEFAULTS['dns-max-in-flight']})
  --ident-port N            identd port on clients (default ${DEFAULTS['ident-port']})

Cores:
  --workers N               N proxy processes sharing the SOCKS port (SO_REUSEPORT; default ${DEFAULTS.workers}).
                            In-process limits are per worker: --max-sessions, --max-handshakes and,
                            with --policy-file, each rule's limits. With --redis-url, rule limits
                            stay fleet-wide. /metrics sums the workers; /readyz needs all ready.

Logs:
  --log-level LEVEL         trace|debug|info|warn|error|silent (default ${DEFAULTS['log-level']})
  --redact-userids          leave USERIDs out of logs and traces

Tracing (OpenTelemetry, off unless configured): the standard OTEL_* variables, e.g.
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER(_ARG),
  OTEL_RESOURCE_ATTRIBUTES; OTEL_METRICS_EXPORTER=otlp also pushes the /metrics registry

${redisModeHelp}`;

const options = {
  listen: { type: 'string', default: DEFAULTS.listen },
  'policy-file': { type: 'string' },
  'allow-empty': { type: 'boolean', default: false },
  ...redisModeOptions,
  'ops-listen': { type: 'string', default: DEFAULTS['ops-listen'] },
  'proxy-protocol': { type: 'boolean', default: false },
  'bind-address': { type: 'string' },
  'guard-endpoint': { type: 'string', multiple: true },
  'handshake-timeout': durationOption('handshake-timeout'),
  'connect-timeout': durationOption('connect-timeout'),
  'bind-timeout': durationOption('bind-timeout'),
  'idle-timeout': durationOption('idle-timeout'),
  'ident-timeout': durationOption('ident-timeout'),
  'drain-grace': durationOption('drain-grace'),
  'max-sessions': { type: 'string', default: DEFAULTS['max-sessions'] },
  'max-handshakes': { type: 'string', default: DEFAULTS['max-handshakes'] },
  'max-pending': { type: 'string', default: DEFAULTS['max-pending'] },
  'source-share': { type: 'string', default: DEFAULTS['source-share'] },
  'dns-timeout': durationOption('dns-timeout'),
  'limits-timeout': durationOption('limits-timeout'),
  'dns-max-in-flight': { type: 'string', default: DEFAULTS['dns-max-in-flight'] },
  'ident-port': { type: 'string', default: DEFAULTS['ident-port'] },
  workers: { type: 'string', default: DEFAULTS.workers },
  'log-level': { type: 'string', default: DEFAULTS['log-level'] },
  'redact-userids': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/**
 * Flags that would do nothing are refused, not ignored: a second --policy-file (only one is read)
 * and fleet-mode flags beside --policy-file (no Redis is used).
 */
function refuseIdleFlags(given: readonly string[], fileMode: boolean): void {
  if (given.filter((name) => name === 'policy-file').length > 1) {
    throw new UsageError(
      '--policy-file given more than once; the proxy reads one file (put every policy in it, as multi-document YAML)',
    );
  }
  if (!fileMode) return;
  const fleetOnly = Object.keys(redisModeOptions).filter((name) => name !== 'redis-url');
  const idle = [...new Set(given.filter((name) => fleetOnly.includes(name)))];
  if (idle.length > 0) {
    throw new UsageError(
      `${idle.map((n) => `--${n}`).join(', ')} only ${idle.length === 1 ? 'applies' : 'apply'} in fleet mode (--redis-url); with --policy-file no Redis is used: remove ${idle.length === 1 ? 'it' : 'them'}`,
    );
  }
}

export async function runProxy(argv: string[], io: CliIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, tokens } = parseArgs({ args: argv, options, strict: true, allowPositionals: false, tokens: true });
  if (values.help) {
    io.stdout(proxyHelp);
    return 0;
  }
  const file = values['policy-file'];
  refuseIdleFlags(
    tokens.flatMap((t) => (t.kind === 'option' ? [t.name] : [])),
    file !== undefined,
  );
  if (file !== undefined && values['redis-url'] !== undefined) {
    throw new UsageError('give one of --policy-file FILE or --redis-url URL, not both');
  }
  // --policy-file always means file mode: a REDIS_URL left in someone's shell must neither switch
  // modes nor make a policy file fail. Only without it does the variable choose fleet mode.
  if (file === undefined && findRedisUrl(values, env) === null) {
    throw new UsageError('give --policy-file FILE, or --redis-url URL (or env REDIS_URL) for fleet mode');
  }
  const guardSpecs: EndpointSpec[] = (values['guard-endpoint'] ?? []).map((text) => {
    try {
      return parseEndpointSpec(text, GuardedRange.GuardEndpoint, `--guard-endpoint ${text}`);
    } catch (error) {
      throw new UsageError(`--guard-endpoint: ${errorMessage(error)}`);
    }
  });
  const listen = parseHostPort('listen', values.listen);
  const ops = parseHostPort('ops-listen', values['ops-listen']);
  const config: ServerConfig = {
    handshakeTimeoutMs: readDuration('handshake-timeout', values['handshake-timeout']),
    dnsTimeoutMs: readDuration('dns-timeout', values['dns-timeout']),
    limitsTimeoutMs: readDuration('limits-timeout', values['limits-timeout']),
    connectTimeoutMs: readDuration('connect-timeout', values['connect-timeout']),
    bindAcceptTimeoutMs: readDuration('bind-timeout', values['bind-timeout']),
    idleTimeoutMs: readDuration('idle-timeout', values['idle-timeout']),
    identTimeoutMs: readDuration('ident-timeout', values['ident-timeout']),
    drainGraceMs: readDuration('drain-grace', values['drain-grace']),
    maxSessions: parseCount('max-sessions', values['max-sessions']),
    maxHandshakes: parseCount('max-handshakes', values['max-handshakes']),
    maxPending: parseCount('max-pending', values['max-pending']),
    sourceShare: parseShare('source-share', values['source-share']),
    identPort: parseCount('ident-port', values['ident-port']),
    proxyProtocol: values['proxy-protocol'],
    bindAddress: values['bind-address'] ?? null,
  };

  const logLevel = parseLogLevel(values['log-level']);
  const workers = parseCount('workers', values.workers);
  const worker = workerLink(env);
  // Alone on stdout (one worker, the default) it may write larger batches; a supervisor and its
  // workers share it, so each of them keeps its writes atomic.
  const logger = createLogger({ level: logLevel, shared: worker !== null || workers > 1 });
  if (workers > 1 && worker === null)
    return runSupervisor({ argv, count: workers, listenHost: listen.host, ops, logger });
  const unsubscribeLogs = logEvents(logger, { redactUserIds: values['redact-userids'] });
  // Fleet mode shares rules and limits through Redis; the limiter's close() also closes the connection.
  // File mode or fleet mode, exactly one (checked above): one value, so the types know it too.
  const { fleet, policyFile } =
    file === undefined ? { fleet: openRedisMode(values, env), policyFile: null } : { fleet: null, policyFile: file };
  const redisWatch =
    fleet === null
      ? null
      : watchRedisMode(fleet, logger, readDuration('snapshot-warn-interval', values['snapshot-warn-interval']));
  const rulesFrom =
    fleet === null
      ? `file ${path.resolve(policyFile)}`
      : `redis ${maskRedisUrl(fleet.target.url)} prefix ${fleet.prefix}`;
  const rules: RuleSource =
    fleet === null ? new FileRuleSource(policyFile, { allowEmpty: values['allow-empty'] }) : fleet.rules;
  // A field, not a `let`: a `let` assigned only in a callback stays typed as its initial null.
  const ruleErrors: { last: Error | null } = { last: null };
  rules.on('error', (error: Error) => void (ruleErrors.last = error)); // logged through the snapshot:error channel
  const limiter: Limiter = fleet?.limiter ?? createMemoryLimiter();
  const dnsMaxInFlight = parseCount('dns-max-in-flight', values['dns-max-in-flight']);
  const resolver = createResolver({
    timeoutMs: config.dnsTimeoutMs === 0 ? 120_000 : config.dnsTimeoutMs,
    maxInFlight: dnsMaxInFlight,
    maxPerSource: sourceLimit(dnsMaxInFlight, config.sourceShare),
  });
  const selfAddresses = localAddresses();
  selfAddresses.add(listen.host);
  const kubernetesApi = kubernetesApiSpec(env);
  const guard = startFleetGuard({
    specs: [
      ...guardSpecs,
      ...(kubernetesApi === null ? [] : [kubernetesApi]),
      ...(fleet === null ? [] : configuredRedisSpecs(fleet.connection)),
    ],
    redis: fleet?.client ?? null,
    onUnresolved: (specs) =>
      logger.warn(
        { endpoints: specs.map((s) => `${s.host}${s.port === null ? '' : `:${s.port}`}`) },
        'guarded endpoint names do not resolve yet; retrying',
      ),
  });
  const pods = fleet?.pods ?? null;
  if (pods !== null)
    pods.onError = (error) =>
      logger.warn({ err: error.message }, 'reading pod addresses from Redis failed; keeping the ones held');
  const server = createProxyServer({
    rules: () => rules.current(),
    limiter,
    resolve: resolver.resolve,
    selfAddresses,
    fleet: guard.endpoints,
    // Fleet mode: the operator's pod address map says which namespace a client is in.
    ...(pods === null ? {} : { namespaceOf: (address: string) => pods.namespaceOf(address) }),
    config,
  });
  const metrics = createProxyMetrics({
    activeSessions: () => server.activeSessions,
    snapshot: () => rules.current(),
    pools: () => server.pools(),
    dnsInFlight: () => resolver.inFlight,
  });
  // Before rules.start(), so the first snapshot gets its "snapshot enforce" span.
  const tracing = await startTracing({
    serviceName: 'socks4-fleet-proxy',
    redactUserIds: values['redact-userids'],
    metricsRegistry: metrics.registry,
    logger, // export failures are logged, never thrown
  });
  let opsServer: Awaited<ReturnType<typeof startOpsServer>> | null = null;
  const shutdown = async (): Promise<void> => {
    redisWatch?.stop();
    await rules.stop();
    await pods?.stop();
    await limiter.close(); // hands held leases back to Redis before exit
    await opsServer?.close();
    await tracing.shutdown(); // every session has ended: its span is in the flush
    metrics.close();
    unsubscribeLogs();
    logger.flush();
    guard.stop();
  };
  // A full pool still serves newcomers (the oldest yields), but a balancer should send them to a
  // pod with room: saturated pods report unready until a slot frees.
  const isReady = (): boolean =>
    !server.draining && rules.current() !== null && server.pools().every((pool) => pool.inUse < pool.capacity);
  let boundPort = 0;

  try {
    if (redisWatch !== null) {
      // Credentials, a database that does not exist or a name that does not resolve: retrying
      // will not help, and a pod on the wrong database would serve another fleet's rules.
      const first = await redisWatch.firstContact;
      if (!first.ready && first.problem?.fatal === true)
        throw new StartupError(`${first.problem.message}; not started`);
    }
    pods?.start();
    await rules.start();
    // A pod in fleet mode without a snapshot yet runs unready (/readyz 503, sessions refused) until
    // one is published; only a policy file that cannot be loaded is fatal.
    if (rules.current() === null && fleet === null) {
      const why = ruleErrors.last?.message ?? 'no rules loaded';
      throw new StartupError(
        `--policy-file ${file}: not started, the file holds no usable rules: ${why}. Fix it (socks4-fleet policy validate ${file} lists every problem)`,
      );
    }
    // A worker's ops endpoints are its supervisor's (src/cli/workers.ts).
    if (worker === null) {
      try {
        opsServer = await startOpsServer({ ...ops, registry: metrics.registry, isReady });
      } catch (error) {
        throw listenError(
          'ops-listen',
          values['ops-listen'],
          argv.every((a) => !a.startsWith('--ops-listen')),
          error as NodeJS.ErrnoException,
        );
      }
    }
    // The guard knows the configured endpoints before the first client is accepted.
    await guard.ready;
    logger.info(
      {
        guarded: guard.endpoints
          .list()
          .map((e) => ({ guard: e.kind, address: formatIpv4(e.ip), port: e.port, from: e.source })),
      },
      'fleet endpoints guarded',
    );
    let bound;
    try {
      bound = await server.listen(listen.host, worker?.port(listen.port) ?? listen.port, {
        reusePort: worker !== null,
      });
    } catch (error) {
      throw listenError(
        'listen',
        values.listen,
        argv.every((a) => !a.startsWith('--listen')),
        error as NodeJS.ErrnoException,
      );
    }
    // The effective deadlines (flags over defaults), so an operator can see what a pod runs with.
    const timeouts = {
      handshakeMs: config.handshakeTimeoutMs,
      connectMs: config.connectTimeoutMs,
      bindAcceptMs: config.bindAcceptTimeoutMs,
      idleMs: config.idleTimeoutMs,
      identMs: config.identTimeoutMs,
      drainGraceMs: config.drainGraceMs,
    };
    const where =
      opsServer === null
        ? { worker: worker?.index }
        : { ops: `${opsServer.address.address}:${opsServer.address.port}` };
    logger.info(
      { listen: `${bound.address}:${bound.port}`, ...where, rules: rulesFrom, timeouts },
      opsServer === null ? 'socks4-fleet worker listening' : 'socks4-fleet proxy listening',
    );
    boundPort = bound.port;
    await redisWatch?.warnWhileNoSnapshot();
  } catch (error) {
    await server.drain(0);
    await shutdown();
    throw error;
  }

  await awaitShutdown(logger, {
    reload: () => (rules instanceof FileRuleSource ? rules.reload() : (fleet?.rules.refresh() ?? Promise.resolve())),
    drain: () => server.drain(),
    force: () => server.drain(0),
    activeSessions: () => server.activeSessions,
    graceMs: config.drainGraceMs,
    onDrainRequest: (startDrain) =>
      worker?.attach({ port: boundPort, registry: metrics.registry, isReady, drain: startDrain }),
  });
  await shutdown();
  logger.info({}, 'drained; exiting');
  logger.flush();
  return 0;
}
