// `socks4-fleet proxy`: wires a rule source, a limiter, the SOCKS listener, telemetry and the
// ops endpoints together, and drains on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { createMemoryLimiter } from '../limits/memory-limiter.ts';
import type { Limiter } from '../limits/types.ts';
import { startOpsServer } from '../ops/ops-server.ts';
import { findRedisUrl } from '../redis/cli-options.ts';
import { FileRuleSource } from '../rules/file-source.ts';
import type { RuleSource } from '../rules/types.ts';
import { createProxyServer, localAddresses } from '../server/proxy-server.ts';
import { defaultServerConfig, type ServerConfig } from '../server/session-env.ts';
import { resolveIPv4 } from '../server/upstream.ts';
import { createLogger, logEvents } from '../telemetry/logging.ts';
import { createProxyMetrics } from '../telemetry/metrics.ts';
import { startTracing } from '../telemetry/tracing.ts';
import { parseCount, parseDuration, parseHostPort, UsageError, type CliIO } from './args.ts';
import { openRedisMode, redisModeHelp, redisModeOptions } from './redis-mode.ts';

export const proxyHelp = `Usage: socks4-fleet proxy --listen HOST:PORT (--policy-file FILE | --redis-url URL | env REDIS_URL) [options]

Serves SOCKS4 and SOCKS4a (CONNECT and BIND).

Rules:
  --policy-file FILE        Socks4Policy YAML (multi-document); reloaded when it changes
  --redis-url URL           shared rules and fleet-wide limits from Redis (see below); without
                            --policy-file, env REDIS_URL does the same (and is ignored with it)

Listeners:
  --listen HOST:PORT        SOCKS listener (default 127.0.0.1:1080)
  --ops-listen HOST:PORT    /healthz /readyz /metrics (default 127.0.0.1:9090; :0 = any free port)
  --proxy-protocol          expect a PROXY protocol v1/v2 header on every connection
  --bind-address IP         address BIND listeners use (default: the one the client reached)

Timeouts (500ms, 10s, 2m; 0 = off where noted):
  --handshake-timeout D     whole handshake (default 10s)
  --connect-timeout D       upstream connect (default 2m, the spec's limit)
  --bind-timeout D          BIND: wait for the inbound connection (default 2m)
  --idle-timeout D          relay idle timeout (default 0 = off)
  --ident-timeout D         RFC 1413 query (default 10s)
  --drain-grace D           on SIGTERM, how long sessions may go on (default 30s)

Capacity:
  --max-sessions N          open sessions (default 10000)
  --max-handshakes N        handshakes in progress (default 1000)
  --ident-port N            identd port on clients (default 113)

Logs:
  --log-level LEVEL         trace|debug|info|warn|error|silent (default info)
  --redact-userids          leave USERIDs out of logs and traces

Tracing (OpenTelemetry, off unless configured): the standard OTEL_* variables, e.g.
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER(_ARG),
  OTEL_RESOURCE_ATTRIBUTES; OTEL_METRICS_EXPORTER=otlp also pushes the /metrics registry

${redisModeHelp}`;

const options = {
  listen: { type: 'string', default: '127.0.0.1:1080' },
  'policy-file': { type: 'string' },
  ...redisModeOptions,
  'ops-listen': { type: 'string', default: '127.0.0.1:9090' },
  'proxy-protocol': { type: 'boolean', default: false },
  'bind-address': { type: 'string' },
  'handshake-timeout': { type: 'string', default: '10s' },
  'connect-timeout': { type: 'string', default: '2m' },
  'bind-timeout': { type: 'string', default: '2m' },
  'idle-timeout': { type: 'string', default: '0' },
  'ident-timeout': { type: 'string', default: '10s' },
  'drain-grace': { type: 'string', default: '30s' },
  'max-sessions': { type: 'string', default: String(defaultServerConfig.maxSessions) },
  'max-handshakes': { type: 'string', default: String(defaultServerConfig.maxHandshakes) },
  'ident-port': { type: 'string', default: '113' },
  'log-level': { type: 'string', default: 'info' },
  'redact-userids': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function runProxy(argv: string[], io: CliIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (values.help) {
    io.stdout(proxyHelp);
    return 0;
  }
  const file = values['policy-file'];
  if (file !== undefined && values['redis-url'] !== undefined) {
    throw new UsageError('give one of --policy-file FILE or --redis-url URL, not both');
  }
  // --policy-file always means file mode: a REDIS_URL left in someone's shell must neither switch
  // modes nor make a policy file fail. Only without it does the variable choose fleet mode.
  if (file === undefined && findRedisUrl(values, env) === null) {
    throw new UsageError('give --policy-file FILE, or --redis-url URL (or env REDIS_URL) for fleet mode');
  }
  const listen = parseHostPort('listen', values.listen);
  const ops = parseHostPort('ops-listen', values['ops-listen']);
  const config: ServerConfig = {
    handshakeTimeoutMs: parseDuration('handshake-timeout', values['handshake-timeout']),
    connectTimeoutMs: parseDuration('connect-timeout', values['connect-timeout']),
    bindAcceptTimeoutMs: parseDuration('bind-timeout', values['bind-timeout']),
    idleTimeoutMs: parseDuration('idle-timeout', values['idle-timeout']),
    identTimeoutMs: parseDuration('ident-timeout', values['ident-timeout']),
    drainGraceMs: parseDuration('drain-grace', values['drain-grace']),
    maxSessions: parseCount('max-sessions', values['max-sessions']),
    maxHandshakes: parseCount('max-handshakes', values['max-handshakes']),
    identPort: parseCount('ident-port', values['ident-port']),
    proxyProtocol: values['proxy-protocol'],
    bindAddress: values['bind-address'] ?? null,
  };

  const logger = createLogger({ level: values['log-level'] });
  const unsubscribeLogs = logEvents(logger, { redactUserIds: values['redact-userids'] });
  // Fleet mode shares rules and limits through Redis; the limiter's close() also closes the connection.
  const fleet = file === undefined ? openRedisMode(values, env) : null;
  const rules: RuleSource = fleet?.rules ?? new FileRuleSource(file as string);
  rules.on('error', () => {}); // reported through the snapshot:error channel
  const limiter: Limiter = fleet?.limiter ?? createMemoryLimiter();
  const selfAddresses = localAddresses();
  selfAddresses.add(listen.host);
  const pods = fleet?.pods ?? null;
  if (pods !== null) pods.onError = (error) => logger.warn({ err: error.message }, 'reading pod addresses from Redis failed; keeping the ones held');
  const server = createProxyServer({
    rules: () => rules.current(),
    limiter,
    resolve: resolveIPv4,
    selfAddresses,
    // Fleet mode: the operator's pod address map says which namespace a client is in.
    ...(pods === null ? {} : { namespaceOf: (address: string) => pods.namespaceOf(address) }),
    config,
  });
  const metrics = createProxyMetrics({
    activeSessions: () => server.activeSessions,
    snapshot: () => rules.current(),
  });
  // Before rules.start(), so the first snapshot gets its "snapshot enforce" span.
  const tracing = await startTracing({
    serviceName: 'socks4-fleet-proxy',
    redactUserIds: values['redact-userids'],
    metricsRegistry: metrics.registry,
    logger, // export failures are logged, never thrown
  });

  pods?.start();
  await rules.start();
  // A pod in fleet mode without a snapshot yet runs unready (/readyz 503, sessions refused) until
  // one is published; only a policy file that cannot be loaded is fatal.
  if (rules.current() === null && fleet === null) {
    logger.error({ source: rules.name }, 'no valid rules to start with');
    await tracing.shutdown();
    logger.flush();
    return 1;
  }
  const opsServer = await startOpsServer({
    ...ops,
    registry: metrics.registry,
    isReady: () => !server.draining && rules.current() !== null,
  });
  const bound = await server.listen(listen.host, listen.port);
  logger.info({ listen: `${bound.address}:${bound.port}`, ops: `${opsServer.address.address}:${opsServer.address.port}` }, 'socks4-fleet proxy listening');

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      logger.info({ signal, activeSessions: server.activeSessions, graceMs: config.drainGraceMs }, 'draining');
      process.removeListener('SIGTERM', stop);
      process.removeListener('SIGINT', stop);
      void server.drain().then(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await rules.stop();
  await pods?.stop();
  await limiter.close(); // hands held leases back to Redis before exit
  await opsServer.close();
  await tracing.shutdown(); // every session has ended: its span is in the flush
  metrics.close();
  logger.info({}, 'drained; exiting');
  unsubscribeLogs();
  logger.flush();
  return 0;
}
