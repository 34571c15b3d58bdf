// `socks4-fleet policy push FILE --redis-url URL` (or env REDIS_URL): validates a policy file
// exactly as the proxy loads it and publishes it as the fleet's rules snapshot with
// publishSnapshot, the same function the operator calls. Every pod picks it up on the change
// notice. With OTEL_* set, the publish is a PRODUCER span whose traceparent rides in the
// snapshot: each pod's "snapshot enforce" span links to it, so one trace search shows the push
// and every pod that enforced it.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { loadPolicyText } from '../policy/load.ts';
import { emptySetProblem } from '../rules/file-source.ts';
import type { Socks4Policy } from '../policy/types.ts';
import { formatIssue } from '../policy/validate.ts';
import { redactRedisUrl, readRedisFlags, redisFlagOptions, redisFlagsHelp } from './redis-flags.ts';
import {
  closeRedisClient,
  createRedisClient,
  parseRedisUrl,
  type RedisConnectionOptions,
} from '../redis/connection.ts';
import { findRulePrefixes } from '../rules/rule-prefixes.ts';
import { waitForRedis } from '../redis/problems.ts';
import { ruleKeys } from '../rules/redis-keys.ts';
import { publishSnapshot } from '../rules/publish-snapshot.ts';
import { policyFileSizeProblem } from '../rules/policy-file.ts';
import { SocksAttr } from '../telemetry/session-spans.ts';
import { activeTraceparent, startTracing, TRACER_NAME } from '../telemetry/tracing.ts';
import { UsageError, type CliIO } from './args.ts';
import { durationHelp, durationOption, readDuration } from './durations.ts';
import { asError, errorMessage } from '../errors.ts';

/** service.name of a traced push (unless OTEL_SERVICE_NAME says otherwise). */
export const PUSH_SERVICE_NAME = 'socks4-fleet-push';
/** The push's span; pods link their "snapshot enforce" span to it. */
export const PUSH_SPAN_NAME = 'socks4 policy push';
/** false when the pushed rules were already current (no pod reloads, nothing links here). */
export const ATTR_SNAPSHOT_CHANGED = 'socks4.snapshot.changed';

export const pushHelp = `Usage: socks4-fleet policy push FILE (--redis-url URL | env REDIS_URL) [options]

Validates FILE (Socks4Policy, multi-document YAML) like "policy validate", then publishes it as
the fleet's rules: an immutable snapshot, the current-version pointer moved atomically, and a
change notice every proxy pod acts on. Pushing rules that are already current changes nothing.

Prints "published <version> ..." (or "unchanged <version> ...") and exits 0; prints every
problem and exits 1 when FILE is invalid or Redis cannot be reached; usage errors exit 2.

Tracing (off unless configured): the standard OTEL_* variables, as for "proxy". The push is then
one trace, and every proxy pod that loads the pushed rules links its "socks4 snapshot enforce"
span to it.

${redisFlagsHelp}
Other:
  --allow-empty             publish a set with no rules (every pod then refuses every request);
                            without it an empty FILE is refused
${durationHelp(['timeout'])}  -h, --help                show this help
`;

const options = {
  ...redisFlagOptions,
  timeout: durationOption('timeout'),
  'allow-empty': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function runPolicyPush(argv: string[], io: CliIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  if (values.help) {
    io.stdout(pushHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one policy FILE, got ${positionals.length}`);
  const file = positionals[0] as string;
  const { connection, prefix } = readRedisFlags(values, env);
  const timeoutMs = readDuration('timeout', values.timeout);

  let text: string;
  try {
    const tooBig = await policyFileSizeProblem(file);
    if (tooBig !== null) {
      io.stderr(`${file}: ${tooBig}\n`);
      return 1;
    }
    text = await readFile(file, 'utf8');
  } catch (error) {
    io.stderr(`${file}: cannot read: ${errorMessage(error)}\n`);
    return 1;
  }
  const { policies, issues } = loadPolicyText(text, file);
  if (issues.length > 0) {
    for (const issue of issues) io.stderr(`${formatIssue(issue)}\n`);
    io.stderr(`not pushed: ${issues.length} problem${issues.length === 1 ? '' : 's'} in ${file}\n`);
    return 1;
  }
  if (policies.length === 0 && !values['allow-empty']) {
    io.stderr(`not pushed: ${emptySetProblem(file)}\n`);
    return 1;
  }

  const tracing = await startTracing({ serviceName: PUSH_SERVICE_NAME });
  try {
    const tracer = trace.getTracer(TRACER_NAME);
    return await tracer.startActiveSpan(PUSH_SPAN_NAME, { kind: SpanKind.PRODUCER }, async (span) => {
      try {
        return await publishPolicies(
          span,
          policies,
          { connection, prefix, timeoutMs, timeoutText: values.timeout },
          io,
        );
      } finally {
        span.end();
      }
    });
  } finally {
    await tracing.shutdown(); // flushes the span before the process exits
  }
}

interface PushTarget {
  readonly connection: RedisConnectionOptions;
  readonly prefix: string;
  readonly timeoutMs: number;
  readonly timeoutText: string;
}

async function publishPolicies(
  span: Span,
  policies: readonly Socks4Policy[],
  target: PushTarget,
  io: CliIO,
): Promise<number> {
  const { connection, prefix, timeoutMs, timeoutText } = target;
  const failed = (message: string): number => {
    span.setStatus({ code: SpanStatusCode.ERROR, message });
    io.stderr(`${message}\n`);
    return 1;
  };
  // The change notice is a Redis PUBLISH: messaging conventions name the channel.
  span.setAttributes({ 'messaging.system': 'redis', 'messaging.destination.name': ruleKeys(prefix).channel });
  // Not on a session's path: allow slower commands than the proxy does.
  // The connect timeout ends a little before the wait does, so the wait reports the connect's own
  // error (a TLS handshake to a plain server only ever times out) rather than "no answer".
  const connectTimeoutMs = Math.max(50, timeoutMs - Math.min(250, timeoutMs / 4));
  const client = createRedisClient({
    ...connection,
    commandTimeoutMs: timeoutMs,
    connectTimeoutMs,
    connectionName: 'socks4-fleet-push',
  });
  try {
    const { tls, db } = parseRedisUrl(connection.url);
    const outcome = await waitForRedis(client, timeoutMs, { url: connection.url, tls, db });
    if (!outcome.ready) {
      return failed(
        `not pushed: ${outcome.problem?.message ?? `cannot reach Redis at ${redactRedisUrl(connection.url)} within ${timeoutText}`}`,
      );
    }
    const traceparent = activeTraceparent();
    const result = await publishSnapshot(client, prefix, policies, {
      source: 'policy push',
      ...(traceparent === undefined ? {} : { traceparent }),
    });
    span.setAttributes({
      [SocksAttr.SnapshotVersion]: result.version,
      [SocksAttr.SnapshotPolicies]: result.policyCount,
      [SocksAttr.SnapshotRules]: result.ruleCount,
      [ATTR_SNAPSHOT_CHANGED]: result.changed,
    });
    const counts = `${result.policyCount} policies, ${result.ruleCount} rules`;
    if (result.changed && result.previous === '') {
      // The first snapshot under this prefix: if others hold rules, pods likely read one of those.
      const others = (await findRulePrefixes(client)).filter((p) => p !== prefix);
      if (others.length > 0) {
        io.stderr(
          `warning: no proxy has read prefix "${prefix}" before (this is its first snapshot), but this Redis holds rules under ${others.map((p) => `"${p}"`).join(', ')}; pods of a Helm release read the release name unless redis.prefix is set: pass --redis-prefix to match\n`,
        );
      }
    }
    io.stdout(
      result.changed
        ? `published ${result.version} (${counts}) to ${prefix}; previous ${result.previous === '' ? 'none' : result.previous}\n`
        : `unchanged ${result.version} (${counts}) is already current in ${prefix}\n`,
    );
    return 0;
  } catch (error) {
    span.recordException(asError(error));
    return failed(`push failed: ${errorMessage(error)}`);
  } finally {
    await closeRedisClient(client);
  }
}
