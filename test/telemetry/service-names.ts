// The service.name each traced process exports under: what dashboards filter on and what a user
// picks in Jaeger or Tempo. The Jaeger end-to-end tests prove these against the real processes
// (jaeger-e2e.test.ts: proxy and push; operator-tracing-e2e.test.ts: operator and proxy; each
// checks Jaeger lists exactly the services it ran), so dashboards.test.ts can hold TraceQL
// queries to them.
import { PUSH_SERVICE_NAME } from '../../src/cli/push-command.ts';

export const SERVICE_NAMES = {
  /** `socks4-fleet proxy` (src/cli/proxy-command.ts). */
  proxy: 'socks4-fleet-proxy',
  /** `socks4-fleet policy push`. */
  push: PUSH_SERVICE_NAME,
  /**
   * `socks4-fleet operator` (OPERATOR_SERVICE_NAME in operator/command.ts; spelled out here so
   * the dashboard tests need not load the Kubernetes client to read it).
   */
  operator: 'socks4-fleet-operator',
} as const;
