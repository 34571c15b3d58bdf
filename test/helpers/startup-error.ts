// A start-up the proxy must refuse, as a user meets it: `socks4-fleet proxy` run to its exit, and
// what a user's mistake must give (HELPERS.md): the exit code, one line naming the flag and the
// fix, never a stack trace.
import assert from 'node:assert/strict';
import { runCli } from './spawn.ts';

export interface ProxyStartup {
  readonly policyFile: string;
  /** --listen; any free port unless given (a test that holds a port names it). */
  readonly listen?: string;
  /** --ops-listen; any free port unless given. */
  readonly opsListen?: string;
}

/** The output holds exactly one `socks4-fleet …` line, matching `line`, and no stack trace. */
export function assertOneLine(output: string, line: RegExp): void {
  const lines = output.split('\n').filter((l) => l.startsWith('socks4-fleet'));
  assert.equal(lines.length, 1, output);
  assert.match(lines[0]!, line);
  assert.doesNotMatch(output, /\n\s+at .*\(/, `no stack trace:\n${output}`);
}

/** Runs the proxy until it exits, checks the exit code and the one line; returns the whole output. */
export async function expectProxyStartupError(startup: ProxyStartup, line: RegExp, code = 1): Promise<string> {
  const run = await runCli([
    'proxy',
    '--policy-file',
    startup.policyFile,
    '--listen',
    startup.listen ?? '127.0.0.1:0',
    '--ops-listen',
    startup.opsListen ?? '127.0.0.1:0',
  ]);
  assert.equal(run.code, code, run.output);
  assertOneLine(run.output, line);
  return run.output;
}
