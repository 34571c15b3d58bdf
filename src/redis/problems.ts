// What went wrong with a Redis connection, said at once and in words a person can act on, with
// the server's address (its URL with the password masked) and never the password. ioredis
// retries forever and a caller waiting for 'ready' used to learn only "not within 10s".
import type { RedisClient } from './connection.ts';

export interface RedisTarget {
  /** The URL as given; only its redacted form is ever printed. */
  readonly url: string;
  readonly tls: boolean;
  readonly db: number;
}

export interface RedisProblem {
  readonly kind: 'auth' | 'database' | 'dns' | 'refused' | 'tls' | 'timeout' | 'other';
  readonly message: string;
  /** Retrying cannot fix it (credentials, a database that does not exist, a name not found). */
  readonly fatal: boolean;
}

/** The URL without its password, for messages and logs. */
export function maskRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable URL>';
  }
}

/** One error of an ioredis client → the cause, for the server `target` names. */
export function describeRedisError(error: Error, target: RedisTarget): RedisProblem {
  const where = `Redis at ${maskRedisUrl(target.url)}`;
  const { code } = error as NodeJS.ErrnoException;
  const text = error.message;
  const problem = (kind: RedisProblem['kind'], message: string, fatal: boolean): RedisProblem => ({
    kind,
    message: `${where}: ${message}`,
    fatal,
  });
  if (text.startsWith('WRONGPASS')) {
    return problem(
      'auth',
      'authentication failed (WRONGPASS: wrong password, or no such ACL user); check the user and password (--redis-username, REDIS_PASSWORD or the URL)',
      true,
    );
  }
  if (text.startsWith('NOAUTH'))
    return problem(
      'auth',
      'the server requires a password (NOAUTH) and none was given; set REDIS_PASSWORD or put it in the URL',
      true,
    );
  if (text.startsWith('NOPERM'))
    return problem('auth', `the ACL user may not run a command it needs (NOPERM): ${text.slice(7, 120)}`, true);
  if (/DB index is out of range/.test(text)) {
    return problem(
      'database',
      `database ${target.db} does not exist on this server (the URL's /${target.db}); use a database below the server's "databases" setting, or none for 0`,
      true,
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return problem('dns', 'host name not found (DNS); check the host in the URL', code === 'ENOTFOUND');
  if (code === 'ECONNREFUSED')
    return problem(
      'refused',
      'connection refused: nothing listens on that host and port; check the URL, or whether Redis runs',
      false,
    );
  const tlsError =
    /SSL|TLS|certificate|wrong version number|self[- ]signed/i.test(text) ||
    (code ?? '').startsWith('ERR_TLS') ||
    (code ?? '').startsWith('ERR_SSL');
  if (target.tls && (tlsError || code === 'ECONNRESET' || code === 'ETIMEDOUT')) {
    return problem(
      'tls',
      `TLS failed (${code ?? text.slice(0, 80)}); if the server does not speak TLS use redis:// instead of rediss://, else check --redis-tls-ca`,
      false,
    );
  }
  if (!target.tls && code === 'ECONNRESET')
    return problem('tls', 'the server closed the connection; if it speaks only TLS use rediss://', false);
  if (code === 'ETIMEDOUT')
    return problem('timeout', 'no answer in time (connect timed out); check the host, port and network policy', false);
  return problem('other', text.slice(0, 200), false);
}

export type ReadyOutcome = { readonly ready: true } | { readonly ready: false; readonly problem: RedisProblem | null };

/**
 * Resolves once the client is ready, or at the first error retrying cannot fix, or after
 * timeoutMs with the last error seen (null when there was none). A database that does not exist
 * makes ioredis report an error and then go "ready" on database 0: that is a failure here.
 */
export function waitForRedis(client: RedisClient, timeoutMs: number, target: RedisTarget): Promise<ReadyOutcome> {
  return new Promise((resolve) => {
    let last: RedisProblem | null = null;
    const done = (outcome: ReadyOutcome): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      resolve(outcome);
    };
    const onReady = (): void => done(last?.fatal === true ? { ready: false, problem: last } : { ready: true });
    const onError = (error: Error): void => {
      last = describeRedisError(error, target);
      // A refused connection is said at once too: waiting out the timeout would not change it.
      if (last.fatal || (error as NodeJS.ErrnoException).code === 'ECONNREFUSED') done({ ready: false, problem: last });
    };
    const timer = setTimeout(() => done({ ready: false, problem: last }), timeoutMs);
    client.on('error', onError);
    client.on('ready', onReady);
    if (client.status === 'ready') onReady();
  });
}

/**
 * Calls `report` with a client's connection problem at once, again whenever the cause changes,
 * and otherwise at most every `repeatMs` while it lasts (a retrying client fails many times a
 * second). Returns the unsubscribe function.
 */
export function watchRedisProblems(
  client: RedisClient,
  target: RedisTarget,
  report: (problem: RedisProblem, repeats: number) => void,
  repeatMs = 60_000,
): () => void {
  let lastMessage = '';
  let lastAt = 0;
  let repeats = 0;
  const onError = (error: Error): void => {
    const problem = describeRedisError(error, target);
    const now = Date.now();
    if (problem.message === lastMessage && now - lastAt < repeatMs) {
      repeats++;
      return;
    }
    report(problem, repeats);
    lastMessage = problem.message;
    lastAt = now;
    repeats = 0;
  };
  const onReady = (): void => {
    lastMessage = ''; // the next failure is news again
  };
  client.on('error', onError);
  client.on('ready', onReady);
  return () => {
    client.off('error', onError);
    client.off('ready', onReady);
  };
}
