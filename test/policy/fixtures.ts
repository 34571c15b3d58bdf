// Builders shared by the policy tests.
import type { EvalContext, PolicyRule, Socks4Policy } from '../../src/policy/types.ts';

export function makePolicy(
  name: string,
  rules: PolicyRule[],
  options: { priority?: number; namespace?: string } = {},
): Socks4Policy {
  return {
    apiVersion: 'socks4-fleet.io/v1alpha1',
    kind: 'Socks4Policy',
    metadata: { name, ...(options.namespace === undefined ? {} : { namespace: options.namespace }) },
    spec: { ...(options.priority === undefined ? {} : { priority: options.priority }), rules },
  };
}

/** A CONNECT from 10.0.0.1 as alice to 93.184.216.34:443, no host name, no self addresses. */
export function makeContext(overrides: Partial<EvalContext> = {}): EvalContext {
  return {
    command: 'connect',
    sourceIp: '10.0.0.1',
    userId: 'alice',
    host: null,
    destIp: '93.184.216.34',
    destPort: 443,
    selfAddresses: new Set<string>(),
    ...overrides,
  };
}
