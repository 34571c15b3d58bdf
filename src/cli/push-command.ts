// `socks4-fleet policy push FILE --redis-url URL`: validates a policy file exactly as the proxy
// loads it and publishes it as the fleet's rules snapshot with publishSnapshot, the same function
// the operator calls. Every pod picks it up on the change notice.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadPolicyText } from '../policy/load.ts';
import { formatIssue } from '../policy/validate.ts';
import { redactRedisUrl, readRedisFlags, redisFlagOptions, redisFlagsHelp } from '../redis/cli-options.ts';
import { closeRedisClient, createRedisClient, waitForReady } from '../redis/connection.ts';
import { publishSnapshot } from '../redis/publish.ts';
import { parseDuration, UsageError, type CliIO } from './args.ts';

export const pushHelp = `Usage: socks4-fleet policy push FILE --redis-url URL [options]

Validates FILE (Socks4Policy, multi-document YAML) like "policy validate", then publishes it as
the fleet's rules: an immutable snapshot, the current-version pointer moved atomically, and a
change notice every proxy pod acts on. Pushing rules that are already current changes nothing.

Prints "published <version> ..." (or "unchanged <version> ...") and exits 0; prints every
problem and exits 1 when FILE is invalid or Redis cannot be reached; usage errors exit 2.

${redisFlagsHelp}
Other:
  --timeout D               give up on Redis after D (default 10s)
  -h, --help                show this help
`;

const options = {
  ...redisFlagOptions,
  timeout: { type: 'string', default: '10s' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function runPolicyPush(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  if (values.help) {
    io.stdout(pushHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one policy FILE, got ${positionals.length}`);
  const file = positionals[0] as string;
  const { connection, prefix } = readRedisFlags(values);
  const timeoutMs = parseDuration('timeout', values.timeout);

  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    io.stderr(`${file}: cannot read: ${(error as Error).message}\n`);
    return 1;
  }
  const { policies, issues } = loadPolicyText(text, file);
  if (issues.length > 0) {
    for (const issue of issues) io.stderr(`${formatIssue(issue)}\n`);
    io.stderr(`not pushed: ${issues.length} problem${issues.length === 1 ? '' : 's'} in ${file}\n`);
    return 1;
  }

  // Not on a session's path: allow slower commands than the proxy does.
  const client = createRedisClient({ ...connection, commandTimeoutMs: timeoutMs, connectTimeoutMs: timeoutMs, connectionName: 'socks4-fleet-push' });
  try {
    if (!(await waitForReady(client, timeoutMs))) {
      io.stderr(`cannot reach Redis at ${redactRedisUrl(connection.url)} within ${values.timeout}\n`);
      return 1;
    }
    const result = await publishSnapshot(client, prefix, policies, { source: 'policy push' });
    const counts = `${result.policyCount} policies, ${result.ruleCount} rules`;
    io.stdout(result.changed
      ? `published ${result.version} (${counts}) to ${prefix}; previous ${result.previous === '' ? 'none' : result.previous}\n`
      : `unchanged ${result.version} (${counts}) is already current in ${prefix}\n`);
    return 0;
  } catch (error) {
    io.stderr(`push failed: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await closeRedisClient(client);
  }
}
