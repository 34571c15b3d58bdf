// `socks4-fleet policy validate` and `socks4-fleet policy explain`: thin adapters over the policy
// engine. They read files and DNS, print, and return an exit code; main.ts exits.

import { lookup as dnsLookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { compilePolicies } from '../policy/compile.ts';
import type { CompiledPolicySet } from '../policy/compile.ts';
import { decideBeforeResolve } from '../policy/evaluate.ts';
import { explainDecision, formatLimits, formatRuleRef } from '../policy/explain.ts';
import { formatIpv4, NOT_IPV4, parseIpv4 } from '../policy/ip.ts';
import { loadPolicyText } from '../policy/load.ts';
import { policyId, Tenancy } from '../policy/types.ts';
import type { Decision, EvalCommand, Issue, Socks4Policy } from '../policy/types.ts';
import { formatIssue } from '../policy/validate.ts';
import { UsageError } from './args.ts';
import type { CliIO } from './args.ts';

const VALIDATE_HELP = `Usage: socks4-fleet policy validate FILE...

Checks Socks4Policy files (multi-document YAML, the same files kubectl applies) exactly as the
proxy and the operator load them: every field, unknown fields refused, rule names unique,
policy namespace/name unique across all FILEs.

Prints "ok: N policies, M rules" and exits 0, or prints each problem on its own line on stderr
as "<namespace>/<name>: <field path>: <message>" and exits 1. Usage errors exit 2.

Options:
  -h, --help   show this help
`;

const EXPLAIN_HELP = `Usage: socks4-fleet policy explain FILE --src IP --dst HOST:PORT [options]

Shows the decision the proxy would make for one request, the rule that decides it, and why each
earlier rule was skipped. When HOST is a name (a SOCKS4a request), it is resolved with the
system resolver (IPv4) unless --resolved gives the address; like the proxy, no lookup happens
when no rule could allow the name.

Options:
  --src IP                 client address (required)
  --dst HOST:PORT          destination: an IPv4 address or a host name, and a port (required)
  --user ID                the request's USERID (default: empty)
  --command connect|bind   the SOCKS command (default: connect)
  --self IP                an address of the proxy itself (guarded like loopback); repeatable
  --resolved IP            the address HOST resolves to, instead of asking DNS
  --namespace NS           the client is a pod of namespace NS: evaluate as the operator's fleet
                           does, where a Socks4Policy governs only its own namespace's pods;
                           --namespace '' is a client that is no pod (cluster policies alone).
                           Without it, every policy in FILE applies to every client, as with
                           --policy-file and policy push. The "tier:" line says which decided.
  -h, --help               show this help

Exit status: 0 when the decision was explained, whether ALLOW or DENY (read the "decision:"
line); 1 when FILE cannot be read or is invalid; 2 on usage errors.
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
      text = await readFile(file, 'utf8');
    } catch (error) {
      issues.push({ path: file, message: `cannot read: ${(error as Error).message}` });
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
async function loadCompiled(files: readonly string[], io: CliIO, tenancy: Tenancy = Tenancy.Shared): Promise<CompiledPolicySet | null> {
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
    options: { help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.stdout(VALIDATE_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('expected at least one FILE');
  const set = await loadCompiled(positionals, io);
  if (set === null) return 1;
  io.stdout(`ok: ${plural(set.policyCount, 'policy', 'policies')}, ${plural(set.ruleCount, 'rule', 'rules')}\n`);
  return 0;
}

/** Injected in tests; the default asks the system resolver for an IPv4 address. */
export interface ExplainDeps {
  readonly lookup: (host: string) => Promise<string>;
}

const defaultDeps: ExplainDeps = {
  lookup: async (host) => (await dnsLookup(host, { family: 4 })).address,
};

const HOST_NAME_RE = /^[A-Za-z0-9_.-]{1,255}$/;

function parseDestination(value: string): { host: string | null; ip: string | null; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65535) throw new UsageError(`--dst: "${value}" is not HOST:PORT with a port from 1 to 65535`);
  const host = match[1] ?? match[2] ?? '';
  const ip = parseIpv4(host);
  if (ip !== NOT_IPV4) return { host: null, ip: formatIpv4(ip), port };
  if (!HOST_NAME_RE.test(host)) throw new UsageError(`--dst: "${host}" is neither an IPv4 address nor a host name`);
  return { host, ip: null, port };
}

function requireIpv4(flag: string, value: string): string {
  const ip = parseIpv4(value);
  if (ip === NOT_IPV4) throw new UsageError(`--${flag}: "${value}" is not an IPv4 address`);
  return formatIpv4(ip);
}

function printDecision(io: CliIO, decision: Decision | { action: 'deny'; reason: string; tier?: undefined; rule: null; ident: 'Off'; limits: null }): void {
  io.stdout([
    `decision: ${decision.action.toUpperCase()}`,
    `reason:   ${decision.reason}`,
    `rule:     ${formatRuleRef(decision.rule)}`,
    `ident:    ${decision.ident}`,
    `limits:   ${formatLimits(decision.limits)}`,
    ...(decision.tier === undefined ? [] : [`tier:     ${decision.tier}`]),
  ].map((l) => `${l}\n`).join(''));
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
      resolved: { type: 'string' },
      namespace: { type: 'string' },
    },
  });
  if (values.help) {
    io.stdout(EXPLAIN_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('expected exactly one FILE');
  if (values.src === undefined) throw new UsageError('--src IP is required');
  if (values.dst === undefined) throw new UsageError('--dst HOST:PORT is required');
  const sourceIp = requireIpv4('src', values.src);
  const dest = parseDestination(values.dst);
  const command = values.command.toLowerCase();
  if (command !== 'connect' && command !== 'bind') throw new UsageError(`--command: "${values.command}" is not connect or bind`);
  if (values.resolved !== undefined && dest.host === null) throw new UsageError('--resolved applies only when --dst names a host');
  const resolvedFlag = values.resolved === undefined ? null : requireIpv4('resolved', values.resolved);
  const selfAddresses = new Set(values.self.map((s) => requireIpv4('self', s)));
  const namespace = values.namespace;
  if (namespace !== undefined && namespace !== '' && !NAMESPACE_RE.test(namespace)) {
    throw new UsageError(`--namespace: "${namespace}" is not a namespace name (lowercase letters, digits and '-', at most 63); use --namespace '' for a client that is no pod`);
  }

  const set = await loadCompiled(positionals, io, namespace === undefined ? Tenancy.Shared : Tenancy.Namespaced);
  if (set === null) return 1;

  const base = {
    command: command as EvalCommand, sourceIp, userId: values.user, host: dest.host, destPort: dest.port, selfAddresses,
    namespace: namespace === undefined || namespace === '' ? null : namespace,
  };
  const kind = dest.host === null ? 'SOCKS4' : 'SOCKS4a';
  const client = namespace === undefined ? '' : namespace === '' ? ' (no pod)' : ` (a pod of namespace ${namespace})`;
  io.stdout(`request:  ${command} from ${sourceIp}${client} user ${JSON.stringify(values.user)} to ${dest.host ?? dest.ip}:${dest.port} (${kind})\n`);
  let destIp = dest.ip;
  if (dest.host !== null) {
    const early = decideBeforeResolve(set, base);
    if (early !== null) {
      io.stdout(`resolve:  skipped: no rule could allow ${dest.host}, so the proxy refuses it without a DNS lookup\n`);
      printDecision(io, early);
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
        io.stdout(`resolve:  ${dest.host} failed: ${(error as Error).message} (pass --resolved IP to explain anyway)\n`);
        printDecision(io, { action: 'deny', reason: 'DnsFailed', rule: null, ident: 'Off', limits: null });
        return 0;
      }
    }
  }
  const { decision, lines } = explainDecision(set, { ...base, destIp: destIp ?? '' });
  printDecision(io, decision);
  io.stdout(`trace:\n${lines.map((l) => `  ${l}\n`).join('')}`);
  return 0;
}
