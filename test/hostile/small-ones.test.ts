// The small ones of issue #12, through the real CLI: a SOCKS4a BIND whose name spells the
// address as ::ffff:127.0.0.1 must accept the right peer (addresses are normalised once, in
// src/policy/ip.ts unmapIpv4), and `policy explain … | head -1` must not die of EPIPE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { connectRaw, socks4Request } from '../helpers/servers.ts';
import { cleanEnv, cliPath, repoRoot } from '../helpers/spawn.ts';
import { startProxyCli } from './scenario-kit.ts';

test('SOCKS4a BIND named ::ffff:127.0.0.1 accepts the peer from 127.0.0.1', async () => {
  const policy = `
apiVersion: socks4-fleet.io/v1alpha1
kind: Socks4Policy
metadata: {name: bind, namespace: hostile}
spec:
  rules:
    - {name: bind-loopback, action: Allow, commands: [Bind], to: {cidrs: ["127.0.0.1/32"]}}
`;
  const proxy = await startProxyCli(policy);
  try {
    for (const name of ['::ffff:127.0.0.1', '::FFFF:7f00:1']) {
      const raw = await connectRaw(proxy.port);
      raw.socket.write(socks4Request(2, 4000, '0.0.0.1', 'binder', name));
      const first = await raw.read(8);
      assert.equal(first[1], 90, `first reply for ${name}`);
      const peer = net.connect({
        host: first.subarray(4, 8).join('.'),
        port: first.readUInt16BE(2),
        localAddress: '127.0.0.1',
      });
      peer.on('error', () => {});
      await once(peer, 'connect');
      const second = await raw.read(8);
      assert.deepEqual([second[0], second[1]], [0, 90], `the peer from 127.0.0.1 is the one ${name} names`);
      assert.equal(second.subarray(4, 8).join('.'), '127.0.0.1', 'the second reply names the peer in IPv4 form');
      peer.write('hello');
      assert.equal((await raw.read(5)).toString(), 'hello');
      peer.destroy();
      raw.socket.destroy();
    }
  } finally {
    await proxy.cli.stop('SIGKILL');
    await rm(proxy.dir, { recursive: true, force: true });
  }
});

test('policy explain into a reader that already left: no EPIPE crash, its own exit code', async () => {
  const child = spawn(
    process.execPath,
    [
      cliPath,
      'policy',
      'explain',
      'examples/policy.yaml',
      '--src',
      '10.0.0.1',
      '--dst',
      'example.com:443',
      '--resolved',
      '203.0.113.7',
    ],
    {
      cwd: repoRoot,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  // Like `| head -0`: the read end is closed before the first line is written.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.doesNotMatch(stderr, /EPIPE|Unhandled/, stderr);
  assert.equal(code, 0, 'the exit code of the decision (allow), not a crash');
});
