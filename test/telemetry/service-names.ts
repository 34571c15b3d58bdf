// The service.name each traced process exports under: what dashboards filter on and what a user
// picks in Jaeger or Tempo. jaeger-e2e.test.ts proves these against the real processes (Jaeger
// lists exactly these services), so dashboards.test.ts can hold TraceQL queries to them.
import { PUSH_SERVICE_NAME } from '../../src/cli/push-command.ts';

export const SERVICE_NAMES = {
  /** `socks4-fleet proxy` (src/cli/proxy-command.ts). */
  proxy: 'socks4-fleet-proxy',
  /** `socks4-fleet policy push`. */
  push: PUSH_SERVICE_NAME,
} as const;
