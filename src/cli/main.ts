#!/usr/bin/env node
// The one entry point: `socks4-fleet proxy | operator | policy validate|explain|push|diff`.
// Only this file calls process.exit, after a command returns its exit code.
import { readFileSync } from 'node:fs';
import { runPolicyDiff } from './diff-command.ts';
import { runPolicyExplain, runPolicyValidate } from './policy-command.ts';
import { runProxy } from './proxy-command.ts';
import { runPolicyPush } from './push-command.ts';
import { processIO, StartupError, UsageError, type CliIO } from './args.ts';
import { errorCode, errorMessage } from '../errors.ts';

const help = `Usage: socks4-fleet <command> [options]

Commands:
  proxy                    serve SOCKS4/SOCKS4a (see: socks4-fleet proxy --help)
  operator                 publish Socks4Policy resources to Redis (see: socks4-fleet operator --help)
  policy validate FILE     check a Socks4Policy file; prints every problem with its field
  policy explain FILE ...  show which rule decides a request and why (--redis-url: the live rules)
  policy push FILE ...     publish a policy file as the fleet's rules in Redis
  policy diff FILE ...     show what a push would change in the live rules (--redis-url URL)

Run any command with --help for its options.
`;

const policyHelp = `Usage: socks4-fleet policy <validate|explain|push> ...

  policy validate FILE...  check Socks4Policy files; prints every problem with its field
  policy explain FILE ...  show which rule decides a request and why
  policy push FILE ...     publish a policy file as the fleet's rules in Redis

Run any of them with --help for its options.
`;

type Command = (argv: string[], io: CliIO) => Promise<number>;

const commands: Record<string, Command> = {
  proxy: runProxy,
  // Loaded on use: @kubernetes/client-node is large, and the proxy never needs it.
  operator: async (argv, io) => (await import('../../operator/command.ts')).runOperator(argv, io),
  'policy validate': runPolicyValidate,
  'policy explain': runPolicyExplain,
  'policy push': runPolicyPush,
  'policy diff': runPolicyDiff,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[], io: CliIO): Promise<number> {
  const [first, second] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    io.stdout(help);
    return first === undefined ? 2 : 0;
  }
  if (first === '--version') {
    io.stdout(`socks4-fleet ${version()}\n`);
    return 0;
  }
  const two = `${first} ${second ?? ''}`;
  const [name, rest] = commands[two] !== undefined ? [two, argv.slice(2)] : [first, argv.slice(1)];
  const command = commands[name];
  if (first === 'policy' && (second === undefined || second === '--help' || second === '-h' || second === 'help')) {
    io.stdout(policyHelp);
    return second === undefined ? 2 : 0;
  }
  if (command === undefined) {
    io.stderr(
      first === 'policy'
        ? `socks4-fleet policy: expected validate, explain, push or diff, got "${second ?? ''}"\n`
        : `socks4-fleet: unknown command "${first}"\n\n${help}`,
    );
    return 2;
  }
  try {
    return await command(rest, io);
  } catch (error) {
    if (error instanceof UsageError || errorCode(error)?.startsWith('ERR_PARSE_ARGS') === true) {
      io.stderr(`socks4-fleet ${name}: ${errorMessage(error)}\n(see socks4-fleet ${name} --help)\n`);
      return 2;
    }
    if (error instanceof StartupError) {
      io.stderr(`socks4-fleet ${name}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2), processIO).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      // A bug, not a user's mistake: the stack when there is one.
      process.stderr.write(
        `socks4-fleet: ${error instanceof Error ? (error.stack ?? String(error)) : errorMessage(error)}\n`,
      );
      process.exit(1);
    },
  );
}
