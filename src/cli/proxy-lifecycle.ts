// The proxy's life after start: signals (SIGHUP reloads; SIGTERM/SIGINT drain; a second one cuts
// the drain short) and the one-line messages for listeners that cannot bind.
import type { Logger } from '../telemetry/logging.ts';
import { StartupError } from './args.ts';

/** A listen failure as one line naming the flag and what to do about it (exit 1, not a stack). */
export function listenError(
  flag: string,
  value: string,
  isDefault: boolean,
  error: NodeJS.ErrnoException,
): StartupError {
  const given = `--${flag} ${value}${isDefault ? ' (the default)' : ''}`;
  const other =
    flag === 'ops-listen'
      ? `; the proxy and the operator both default to 127.0.0.1:9090, so give one of them --ops-listen HOST:PORT (:0 = any free port)`
      : `; stop what holds it or pick another with --${flag} HOST:PORT`;
  switch (error.code) {
    case 'EADDRINUSE':
      return new StartupError(`${given}: address already in use${other}`);
    case 'EACCES':
      return new StartupError(
        `${given}: permission denied (ports below 1024 need privileges); pick a port above 1023 with --${flag}`,
      );
    case 'EADDRNOTAVAIL':
      return new StartupError(
        `${given}: no interface of this host has that address; use 0.0.0.0 or one of its addresses`,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartupError(`${given}: the host name does not resolve; give an IP address`);
    default:
      return new StartupError(`${given}: cannot listen: ${error.message}`);
  }
}

export interface SignalHandlers {
  /** SIGHUP: re-read the rules (the file, or the Redis pointer). */
  readonly reload: () => Promise<void>;
  /** First SIGTERM/SIGINT: stop accepting and drain within the grace period. */
  readonly drain: () => Promise<void>;
  /** A second SIGTERM/SIGINT while draining: close every session now. */
  readonly force: () => Promise<void>;
  readonly activeSessions: () => number;
  readonly graceMs: number;
  /**
   * Hands over a function that starts the drain as a first signal would, and does nothing once
   * draining: a `--workers` worker drains when its supervisor says so, and the supervisor's word
   * after a terminal's Ctrl-C (which reached the worker too) must not count as a second signal.
   */
  readonly onDrainRequest?: (startDrain: () => void) => void;
}

/** Resolves when the proxy should shut down (drained, or forced). */
export function awaitShutdown(logger: Logger, handlers: SignalHandlers): Promise<void> {
  return new Promise<void>((resolve) => {
    let draining = false;
    const onHangup = (): void => {
      logger.info({ signal: 'SIGHUP' }, 'reloading rules');
      void handlers.reload();
    };
    const onStop = (signal: NodeJS.Signals): void => {
      if (draining) {
        logger.warn(
          { signal, activeSessions: handlers.activeSessions() },
          'second signal while draining: forcing exit, closing every session now',
        );
        void handlers.force();
        return;
      }
      draining = true;
      logger.info(
        { signal, activeSessions: handlers.activeSessions(), graceMs: handlers.graceMs },
        'draining (send the signal again to force the exit)',
      );
      void handlers.drain().then(() => {
        process.removeListener('SIGTERM', onStop);
        process.removeListener('SIGINT', onStop);
        process.removeListener('SIGHUP', onHangup);
        resolve();
      });
    };
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
    process.on('SIGHUP', onHangup);
    handlers.onDrainRequest?.(() => {
      if (!draining) onStop('SIGTERM');
    });
  });
}
