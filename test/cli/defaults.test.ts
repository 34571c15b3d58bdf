// Defaults are written once: the server's knobs in defaultServerConfig, ident's in ident.ts, the
// Redis limiter's lease and the Redis rules source's refresh beside their code. The flag table,
// the parsed flags and --help all read them, so none can drift from what the library does when a
// flag is left out.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readDuration, type DurationFlag } from '../../src/cli/durations.ts';
import { proxyHelp } from '../../src/cli/proxy-command.ts';
import { DEFAULT_LEASE_TTL_MS } from '../../src/limits/redis-limiter.ts';
import { DEFAULT_REFRESH_INTERVAL_MS } from '../../src/rules/redis-source.ts';
import { DEFAULT_IDENT_TIMEOUT_MS, IDENT_PORT } from '../../src/server/ident.ts';
import { defaultServerConfig, type ServerConfig } from '../../src/server/session-env.ts';

test('every duration flag left out means exactly the library default', () => {
  const server: Array<[DurationFlag, keyof ServerConfig]> = [
    ['handshake-timeout', 'handshakeTimeoutMs'],
    ['dns-timeout', 'dnsTimeoutMs'],
    ['limits-timeout', 'limitsTimeoutMs'],
    ['connect-timeout', 'connectTimeoutMs'],
    ['bind-timeout', 'bindAcceptTimeoutMs'],
    ['idle-timeout', 'idleTimeoutMs'],
    ['ident-timeout', 'identTimeoutMs'],
    ['drain-grace', 'drainGraceMs'],
  ];
  for (const [flag, key] of server) assert.equal(readDuration(flag, undefined), defaultServerConfig[key], flag);
  assert.equal(readDuration('rules-refresh', undefined), DEFAULT_REFRESH_INTERVAL_MS);
  assert.equal(readDuration('lease-ttl', undefined), DEFAULT_LEASE_TTL_MS);
  assert.equal(defaultServerConfig.identTimeoutMs, DEFAULT_IDENT_TIMEOUT_MS);
  assert.equal(defaultServerConfig.identPort, IDENT_PORT);
});

test('proxy --help states the server defaults the proxy runs with', () => {
  const states = (flag: string, value: unknown): void => {
    const line = new RegExp(
      `--${flag} [^\\n]*(?:\\n {28}[^\\n]*)*?\\(default ${String(value).replace('.', '\\.')}[;)]`,
    );
    assert.match(proxyHelp, line, `--${flag} default ${String(value)}`);
  };
  states('max-sessions', defaultServerConfig.maxSessions);
  states('max-handshakes', defaultServerConfig.maxHandshakes);
  states('max-pending', defaultServerConfig.maxPending);
  states('source-share', defaultServerConfig.sourceShare);
  states('ident-port', defaultServerConfig.identPort);
  states('handshake-timeout D', '10s');
});
