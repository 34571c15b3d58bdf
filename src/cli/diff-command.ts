// `socks4-fleet policy diff FILE --redis-url URL`: what `policy push FILE` would change in the
// live fleet, policy by policy and rule by rule, without changing anything. Exit codes follow
// `diff` and `kubectl diff`, so scripts can gate a push on them.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { diffPolicies, formatPolicyDiff } from '../policy/diff.ts';
import { loadPolicyText } from '../policy/load.ts';
import { formatIssue } from '../policy/validate.ts';
import { redisFlagsHelp } from './redis-flags.ts';
import { buildSnapshotDocument } from '../rules/snapshot-document.ts';
import { DURATIONS } from './durations.ts';
import { UsageError, type CliIO } from './args.ts';
import { describeLiveRules, LiveRulesError, liveRulesOptions, readLiveRules } from './live-rules.ts';
import { errorMessage } from '../errors.ts';

export const diffHelp = `Usage: socks4-fleet policy diff FILE (--redis-url URL | env REDIS_URL) [options]

Compares FILE (Socks4Policy, multi-document YAML, validated like "policy validate") with the
fleet's live rules snapshot in Redis and prints what "policy push FILE" would change:

  + policy ns/name (...)      added; its rules follow
  - policy ns/name (...)      removed
  ~ policy ns/name            changed: priority, enforcement, and
      + rule / - rule         rules added or removed
      ~ rule NAME             a rule's fields, before -> after
      rule order: a, b -> b, a  the order of the rules both versions hold

Defaults compare equal to what they stand for (priority 1000, enforcement Enforce, ident Off).
Nothing is written to Redis.

Exit status: 0 when FILE is what the fleet enforces; 1 when they differ; 2 on usage errors, an
invalid FILE, or a live snapshot that cannot be read.

${redisFlagsHelp}
Other:
  --timeout D               give up on Redis after D (default ${DURATIONS.timeout.default})
  -h, --help                show this help
`;

const options = {
  ...liveRulesOptions,
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function runPolicyDiff(argv: string[], io: CliIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  if (values.help) {
    io.stdout(diffHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one policy FILE, got ${positionals.length}`);
  const file = positionals[0] as string;

  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    io.stderr(`${file}: cannot read: ${errorMessage(error)}\n`);
    return 2;
  }
  const { policies, issues } = loadPolicyText(text, file);
  if (issues.length > 0) {
    for (const issue of issues) io.stderr(`${formatIssue(issue)}\n`);
    io.stderr(`not compared: ${issues.length} problem${issues.length === 1 ? '' : 's'} in ${file}\n`);
    return 2;
  }
  let live;
  try {
    live = await readLiveRules(values, env);
  } catch (error) {
    if (!(error instanceof LiveRulesError)) throw error;
    io.stderr(`${error.message}\n`);
    return 2;
  }
  // The document a push would write: normalised exactly as the live one was.
  const pushed = buildSnapshotDocument(policies).document;
  io.stdout(`live:     ${describeLiveRules(live).replace(/^snapshot: /, '')}\n`);
  io.stdout(`${file}: would publish ${pushed.version}\n`);
  if (pushed.version === live.document.version) {
    io.stdout('no changes: the fleet already enforces these rules\n');
    return 0;
  }
  const changes = diffPolicies(live.document.policies, pushed.policies);
  const lines = formatPolicyDiff(changes);
  // Same policies, different version: only what the pods ignore differs (e.g. key order).
  io.stdout(lines.length === 0 ? 'no policy or rule changes\n' : lines.map((l) => `${l}\n`).join(''));
  const count = (kind: string): number => changes.filter((c) => c.kind === kind).length;
  io.stdout(`${count('added')} added, ${count('removed')} removed, ${count('changed')} changed\n`);
  return lines.length === 0 ? 0 : 1;
}
