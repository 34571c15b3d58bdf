// An empty policy set refuses every request, so it is refused unless asked for with
// --allow-empty: by `policy validate`, by `policy push` (before it touches Redis), and by the
// proxy at start and on reload (the rules in force stay). A reload that drops more than half of
// the rules is loaded but logged at warn.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { startPolicyWorkspace, allowEchoPolicy, type PolicyWorkspace } from '../helpers/policy-workspace.ts';
import { exchange, socks4Request, type Closable } from '../helpers/servers.ts';
import { freePort, startCli } from '../helpers/spawn.ts';
import { expectProxyStartupError } from '../helpers/startup-error.ts';
import { runMain } from '../helpers/run-main.ts';

delete process.env.REDIS_URL;

const EMPTY = '# every policy was deleted\n---\n';

let workspace: PolicyWorkspace;
let echo: Closable;
let empty: string;

before(async () => {
  workspace = await startPolicyWorkspace('socks4-empty-');
  echo = workspace.echo;
  empty = await workspace.write('empty.yaml', EMPTY);
});

after(() => workspace?.close());

test('policy validate: an empty file is a problem (exit 1) unless --allow-empty', async () => {
  const refused = await runMain('policy', 'validate', empty);
  assert.equal(refused.code, 1);
  assert.match(
    refused.err,
    /empty\.yaml: no rules \(no Socks4Policy objects\), which would refuse every request; pass --allow-empty if that is what you want/,
  );
  const allowed = await runMain('policy', 'validate', '--allow-empty', empty);
  assert.equal(allowed.code, 0, allowed.err);
  assert.equal(allowed.out, 'ok: 0 policies, 0 rules\n');
});

test('policy push: an empty file is not pushed, and Redis is never contacted', async () => {
  // Port 1 has no Redis: a push that tried would fail on the connection, not on the file.
  const { code, err } = await runMain(
    'policy',
    'push',
    empty,
    '--redis-url',
    'redis://127.0.0.1:1',
    '--timeout',
    '200ms',
  );
  assert.equal(code, 1);
  assert.match(err, /^not pushed: .*empty\.yaml: no rules .*pass --allow-empty/);
});

test('proxy: an empty file at start is refused in one line; with --allow-empty it starts and refuses every request', async () => {
  await expectProxyStartupError(
    { policyFile: empty },
    /^socks4-fleet proxy: --policy-file .*empty\.yaml: not started, .*no rules .*pass --allow-empty/,
  );

  const socksPort = await freePort();
  const proxy = startCli([
    'proxy',
    '--policy-file',
    empty,
    '--allow-empty',
    '--listen',
    `127.0.0.1:${socksPort}`,
    '--ops-listen',
    '127.0.0.1:0',
  ]);
  try {
    await proxy.waitForOutput(/proxy listening/);
    assert.match(
      proxy.output(),
      /"level":"warn".*"msg":"rules snapshot loaded; it holds no rules, so every request is refused"/,
    );
    const { reply, raw } = await exchange(socksPort, socks4Request(1, echo.port, '127.0.0.1', 'cli'));
    raw.socket.destroy();
    assert.equal(reply[1], 91);
  } finally {
    await proxy.stop('SIGKILL');
  }
});

test('proxy reload: an emptied file is refused and the rules stay; dropping over half the rules is a warning', async () => {
  const file = await workspace.write('reload.yaml', allowEchoPolicy(echo.port, 3)); // 4 rules
  const socksPort = await freePort();
  const proxy = startCli([
    'proxy',
    '--policy-file',
    file,
    '--listen',
    `127.0.0.1:${socksPort}`,
    '--ops-listen',
    '127.0.0.1:0',
  ]);
  try {
    await proxy.waitForOutput(/proxy listening/);
    await writeFile(file, EMPTY);
    proxy.child.kill('SIGHUP'); // the watcher would see it too; SIGHUP makes the re-read certain
    await proxy.waitForOutput(
      /"level":"error".*"keeping":"[0-9a-f]+".*"msg":"rules snapshot refused; keeping the previous one"/,
    );
    const { reply, raw } = await exchange(socksPort, socks4Request(1, echo.port, '127.0.0.1', 'cli'));
    raw.socket.destroy();
    assert.equal(reply[1], 90, 'the previous rules are still in force');

    await writeFile(file, allowEchoPolicy(echo.port)); // 4 rules → 1
    proxy.child.kill('SIGHUP');
    await proxy.waitForOutput(
      /"level":"warn".*"rules":1,"previousRules":4.*"msg":"rules snapshot loaded; it drops 3 of 4 rules"/,
    );
  } finally {
    await proxy.stop('SIGKILL');
  }
});
