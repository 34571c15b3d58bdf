// `socks4-fleet policy validate` and `socks4-fleet policy explain`: thin adapters over the policy
// engine. They read files and DNS, print, and return an exit code; main.ts exits.

import { lookup as dnsLookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { compilePolicies } from '../policy/compile.ts';
import type { CompiledPolicySet } from '../policy/compile.ts';
import { decideBeforeResolve } from '../policy/evaluate.ts';
import { formatLimits, formatRuleRef } from '../policy/explain.ts';
import { explainWithReport, REPORT_MARK } from '../policy/explain-report.ts';
import { evaluateReportBeforeResolve } from '../policy/report.ts';
import { FleetEndpointSet } from '../policy/fleet-endpoints.ts';
import { GuardedRange } from '../policy/guard.ts';
import { parseEndpointSpec, type EndpointSpec } from '../server/fleet-guard.ts';
import { canonicalizeHost } from '../policy/hostname.ts';
import { formatIpv4, NOT_IPV4, parseIpv4 } from '../policy/ip.ts';
import { loadPolicyText } from '../policy/load.ts';
import { policyId, Tenancy } from '../policy/types.ts';
import type { Decision, Issue, Socks4Policy, UnresolvedContext } from '../policy/types.ts';
import { formatIssue } from '../policy/validate.ts';
import { findRedisUrl, redisFlagsHelp } from './redis-flags.ts';
import { emptySetProblem } from '../rules/file-source.ts';
import { policyFileSizeProblem } from '../rules/policy-file.ts';
import { DURATIONS } from './durations.ts';
import { UsageError } from './args.ts';
import type { CliIO } from './args.ts';
import { describeLiveRules, LiveRulesError, liveRulesOptions, readLiveRules } from './live-rules.ts';
import { errorMessage } from '../errors.ts';

const VALIDATE_HELP = `Usage: socks4-fleet policy validate FILE...

Checks Socks4Policy files (multi-document YAML, the same files kubectl applies) exactly as the
proxy and the operator load them: every field, unknown fields refused, rule names unique,
policy namespace/name unique across all FILEs.

Prints "ok: N policies, M rules" and exits 0, or prints each problem on its own line on stderr
as "<namespace>/<name>: <field path>: <message>" and exits 1. Usage errors exit 2. Files with no
policy at all are a problem too (that set refuses every request) unless --allow-empty.

Options:
  --allow-empty  accept a set with no rules
  -h, --help     show this help
`;

const EXPLAIN_HELP = `Usage: socks4-fleet policy explain (FILE | --redis-url URL) --src IP --dst HOST:PORT [options]

Shows the decision the proxy would make for one request, the rule that decides it, and why each
earlier rule was skipped. When HOST is a name (a SOCKS4a request), it is resolved with the
system resolver (IPv4) unless --resolved gives the address; like the proxy, no lookup happens
when no rule could allow the name.

The rules come from FILE, or, with --redis-url (or env REDIS_URL and no FILE), from the fleet's
live snapshot in Redis: its version and age are printed first. Policies with
"enforcement: Report" are marked ${REPORT_MARK}; the "report:" line says what they would have
decided, which the proxy records and does not enforce.

Options:
  --src IP                 client address (required)
  --dst HOST:PORT          destination: an IPv4 address or a host name, and a port (required)
  --user ID                the request's USERID (default: empty)
  --command connect|bind   the SOCKS command (default: connect)
  --self IP                an address of the proxy itself (guarded even inside an opened
                           range, opened only by its /32); repeatable
  --guard-endpoint IP[:PORT]  a fleet endpoint the proxy guards (its Redis, the API server, a
                           proxy --guard-endpoint; every port unless PORT); repeatable
  --resolved IP            the address HOST resolves to, instead of asking DNS
  --timeout D              with --redis-url: give up on Redis after D (default ${DURATIONS.timeout.default})
  --namespace NS           the client is a pod of namespace NS: evaluate as the operator's fleet
                           does, where a Socks4Policy governs only its own namespace's pods;
                           --namespace '' is a client that is no pod (cluster policies alone).
                           Without it, every policy in FILE applies to every client, as with
                           --policy-file and policy push. The "tier:" line says which decided.
  -h, --help               show this help

${redisFlagsHelp}
Exit status: 0 when the decision was explained, whether ALLOW or DENY (read the "decision:"
line); 1 when FILE cannot be read or is invalid, or the live snapshot cannot be read; 2 on
usage errors.
`;

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

interface LoadedFiles {
  readonly policies: Socks4Policy[];
  readonly issues: Issue[];
}

async function loadFiles(files: readonly string[]): Promise<LoadedFiles> {
  const policies: Socks4Policy[] = [];
  const issues: Issue[] = [];
  const firstFile = new Map<string, string>();
  for (const file of files) {
    let text: string;
    try {
      const tooBig = await policyFileSizeProblem(file);
      if (tooBig !== null) {
        issues.push({ path: file, message: tooBig });
        continue;
      }
      text = await readFile(file, 'utf8');
    } catch (error) {
      issues.push({ path: file, message: `cannot read: ${errorMessage(error)}` });
      continue;
    }
    const loaded = loadPolicyText(text, file);
    issues.push(...loaded.issues);
    for (const p of loaded.policies) {
      const id = policyId(p);
      const seenIn = firstFile.get(id);
      if (seenIn !== undefined) {
        issues.push({ path: `${id}: metadata.name`, message: `duplicate policy ${id} (also in ${seenIn})` });
        continue;
      }
      firstFile.set(id, file);
      policies.push(p);
    }
  }
  return { policies, issues };
}

/** Loads and compiles, or prints the issues and returns null. */
async function loadCompiled(
  files: readonly string[],
  io: CliIO,
  tenancy: Tenancy = Tenancy.Shared,
): Promise<CompiledPolicySet | null> {
  const { policies, issues } = await loadFiles(files);
  if (issues.length > 0) {
    io.stderr(issues.map((i) => `${formatIssue(i)}\n`).join(''));
    return null;
  }
  return compilePolicies(policies, { tenancy });
}

const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export async function runPolicyValidate(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { help: { type: 'boolean', short: 'h' }, 'allow-empty': { type: 'boolean', default: false } },
  });
  if (values.help) {
    io.stdout(VALIDATE_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('expected at least one FILE');
  const set = await loadCompiled(positionals, io);
  if (set === null) return 1;
  if (set.policyCount === 0 && !values['allow-empty']) {
    io.stderr(`${emptySetProblem(positionals.join(', '))}\n`);
    return 1;
  }
  const reports = set.report?.policies.size ?? 0;
  const mode = reports === 0 ? '' : ` (${reports} in Report mode: recorded, not enforced)`;
  io.stdout(`ok: ${plural(set.policyCount, 'policy', 'policies')}, ${plural(set.ruleCount, 'rule', 'rules')}${mode}\n`);
  return 0;
}

/** Injected in tests; the default asks the system resolver for an IPv4 address. */
export interface ExplainDeps {
  readonly lookup: (host: string) => Promise<string>;
  /** Where REDIS_URL, REDIS_PASSWORD, ... are read (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

const defaultDeps: ExplainDeps = {
  lookup: async (host) => (await dnsLookup(host, { family: 4 })).address,
};

interface Destination {
  readonly host: string | null;
  readonly ip: string | null;
  readonly port: number;
  /** What --dst said, when the proxy would convert it (IDNA, case, an address spelled as a name). */
  readonly spelled: string | null;
  /** Why the proxy would refuse the name with InvalidHostname. */
  readonly invalid: string | null;
}

/** A dotted quad is a plain SOCKS4 request; anything else is a SOCKS4a name, canonicalised as the proxy does. */
function parseDestination(value: string): Destination {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65535)
    throw new UsageError(`--dst: "${value}" is not HOST:PORT with a port from 1 to 65535`);
  const host = match[1] ?? match[2] ?? '';
  const ip = parseIpv4(host);
  if (ip !== NOT_IPV4) return { host: null, ip: formatIpv4(ip), port, spelled: null, invalid: null };
  const canonical = canonicalizeHost(host);
  if (canonical.kind === 'invalid') return { host, ip: null, port, spelled: null, invalid: canonical.detail };
  const name = canonical.kind === 'name' ? canonical.name : canonical.text;
  return {
    host: name,
    ip: canonical.kind === 'address' ? canonical.text : null,
    port,
    spelled: name === host ? null : host,
    invalid: null,
  };
}

function requireIpv4(flag: string, value: string): string {
  const ip = parseIpv4(value);
  if (ip === NOT_IPV4) throw new UsageError(`--${flag}: "${value}" is not an IPv4 address`);
  return formatIpv4(ip);
}

function printDecision(
  io: CliIO,
  decision: Decision | { action: 'deny'; reason: string; tier?: undefined; rule: null; ident: 'Off'; limits: null },
): void {
  io.stdout(
    [
      `decision: ${decision.action.toUpperCase()}`,
      `reason:   ${decision.reason}`,
      `rule:     ${formatRuleRef(decision.rule)}`,
      `ident:    ${decision.ident}`,
      `limits:   ${formatLimits(decision.limits)}`,
      ...('guard' in decision && decision.guard !== undefined ? [`guard:    ${decision.guard}`] : []),
      ...(decision.tier === undefined ? [] : [`tier:     ${decision.tier}`]),
    ]
      .map((l) => `${l}\n`)
      .join(''),
  );
}

/** The Report line, printed only when Report policies are loaded. */
function printReport(io: CliIO, set: CompiledPolicySet, report: Decision | null): void {
  if (set.report === null) return;
  io.stdout(
    report === null
      ? 'report:   none: no Report policy would decide this request\n'
      : `report:   ${report.action.toUpperCase()} (${report.reason}) by ${formatRuleRef(report.rule)} ${REPORT_MARK}: recorded, not enforced\n`,
  );
}

export async function runPolicyExplain(argv: string[], io: CliIO, deps: ExplainDeps = defaultDeps): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      src: { type: 'string' },
      dst: { type: 'string' },
      user: { type: 'string', default: '' },
      command: { type: 'string', default: 'connect' },
      self: { type: 'string', multiple: true, default: [] },
      'guard-endpoint': { type: 'string', multiple: true, default: [] },
      resolved: { type: 'string' },
      ...liveRulesOptions,
      namespace: { type: 'string' },
    },
  });
  if (values.help) {
    io.stdout(EXPLAIN_HELP);
    return 0;
  }
  const env = deps.env ?? process.env;
  if (positionals.length > 1) throw new UsageError('expected one FILE, or --redis-url URL for the live rules');
  if (positionals.length === 1 && values['redis-url'] !== undefined)
    throw new UsageError('give FILE or --redis-url, not both');
  const live = positionals.length === 0;
  if (live && findRedisUrl(values, env) === null)
    throw new UsageError('expected a policy FILE, or --redis-url URL (or env REDIS_URL) for the live rules');
  if (values.src === undefined) throw new UsageError('--src IP is required');
  if (values.dst === undefined) throw new UsageError('--dst HOST:PORT is required');
  const sourceIp = requireIpv4('src', values.src);
  const dest = parseDestination(values.dst);
  const command = values.command.toLowerCase();
  if (command !== 'connect' && command !== 'bind')
    throw new UsageError(`--command: "${values.command}" is not connect or bind`);
  if (values.resolved !== undefined && dest.host === null)
    throw new UsageError('--resolved applies only when --dst names a host');
  const resolvedFlag = values.resolved === undefined ? null : requireIpv4('resolved', values.resolved);
  const selfAddresses = new Set(values.self.map((s) => requireIpv4('self', s)));
  const fleet = new FleetEndpointSet();
  fleet.replace(
    'flag',
    values['guard-endpoint'].map((text) => {
      let spec: EndpointSpec;
      try {
        spec = parseEndpointSpec(text, GuardedRange.GuardEndpoint, `--guard-endpoint ${text}`);
      } catch (error) {
        throw new UsageError(`--guard-endpoint: ${errorMessage(error)}`);
      }
      return {
        kind: spec.kind,
        ip: parseIpv4(requireIpv4('guard-endpoint', spec.host)),
        port: spec.port,
        source: spec.source,
      };
    }),
  );

  const namespace = values.namespace;
  if (namespace !== undefined && namespace !== '' && !NAMESPACE_RE.test(namespace)) {
    throw new UsageError(
      `--namespace: "${namespace}" is not a namespace name (lowercase letters, digits and '-', at most 63); use --namespace '' for a client that is no pod`,
    );
  }

  let set: CompiledPolicySet | null;
  if (live) {
    try {
      const rules = await readLiveRules(values, env);
      io.stdout(`${describeLiveRules(rules)}\n`);
      set = rules.snapshot.compiled;
    } catch (error) {
      if (!(error instanceof LiveRulesError)) throw error;
      io.stderr(`${error.message}\n`);
      return 1;
    }
  } else {
    set = await loadCompiled(positionals, io, namespace === undefined ? Tenancy.Shared : Tenancy.Namespaced);
  }
  if (set === null) return 1;

  const base: UnresolvedContext = {
    command,
    sourceIp,
    userId: values.user,
    host: dest.host,
    destPort: dest.port,
    selfAddresses,
    fleet,
    namespace: namespace === undefined || namespace === '' ? null : namespace,
  };
  const kind = dest.host === null ? 'SOCKS4' : 'SOCKS4a';
  const client = namespace === undefined ? '' : namespace === '' ? ' (no pod)' : ` (a pod of namespace ${namespace})`;
  io.stdout(
    `request:  ${command} from ${sourceIp}${client} user ${JSON.stringify(values.user)} to ${dest.host ?? dest.ip}:${dest.port} (${kind})\n`,
  );
  let destIp = dest.ip;
  if (dest.invalid !== null) {
    io.stdout(`name:     ${JSON.stringify(dest.host)} ${dest.invalid}: refused before any rule or DNS\n`);
    printDecision(io, { action: 'deny', reason: 'InvalidHostname', rule: null, ident: 'Off', limits: null });
    return 0;
  }
  if (dest.spelled !== null)
    io.stdout(`name:     ${JSON.stringify(dest.spelled)} is matched and resolved as ${dest.host}\n`);
  if (dest.host !== null && dest.ip !== null) io.stdout(`resolve:  skipped: the name is an IPv4 address\n`);
  if (dest.host !== null && dest.ip === null) {
    const early = decideBeforeResolve(set, base);
    if (early !== null) {
      io.stdout(`resolve:  skipped: no rule could allow ${dest.host}, so the proxy refuses it without a DNS lookup\n`);
      printDecision(io, early);
      printReport(io, set, evaluateReportBeforeResolve(set, base));
      return 0;
    }
    if (resolvedFlag !== null) {
      destIp = resolvedFlag;
      io.stdout(`resolve:  ${dest.host} -> ${destIp} (--resolved)\n`);
    } else {
      try {
        destIp = requireIpv4('dst', await deps.lookup(dest.host));
        io.stdout(`resolve:  ${dest.host} -> ${destIp} (system resolver)\n`);
      } catch (error) {
        io.stdout(`resolve:  ${dest.host} failed: ${errorMessage(error)} (pass --resolved IP to explain anyway)\n`);
        printDecision(io, { action: 'deny', reason: 'DnsFailed', rule: null, ident: 'Off', limits: null });
        return 0;
      }
    }
  }
  const { decision, report, lines } = explainWithReport(set, { ...base, destIp: destIp ?? '' });
  printDecision(io, decision);
  printReport(io, set, report);
  io.stdout(`trace:\n${lines.map((l) => `  ${l}\n`).join('')}`);
  return 0;
}
