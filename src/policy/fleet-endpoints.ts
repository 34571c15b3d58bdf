// The fleet's own endpoints as the SSRF guard sees them: addresses (with a port, or every port)
// that stay guarded even inside an opened address class. Pure data: discovering them (resolving
// the Redis URL, following ioredis to Sentinel masters and Cluster nodes, reading
// KUBERNETES_SERVICE_HOST) happens at the edge, in src/server/fleet-guard.ts, which replaces a
// group whenever what it knows changes.

import type { FleetEndpointKind } from './guard.ts';

export interface FleetEndpoint {
  readonly kind: FleetEndpointKind;
  /** IPv4 as uint32. */
  readonly ip: number;
  /** The guarded port, or null for every port of the address. */
  readonly port: number | null;
  /** Where it came from, for explanations and logs: `redis://redis:6379`, `KUBERNETES_SERVICE_HOST`. */
  readonly source: string;
}

/** What the guard asks: is ip:port one of the fleet's endpoints? */
export interface FleetEndpoints {
  find(ip: number, port: number): FleetEndpoint | null;
}

/**
 * Endpoints in named groups (`redis`, `kubernetes-api`, `flag`), each replaced as a whole when its
 * discovery learns something new. Lookups hit one Map; the map is rebuilt on the rare change.
 */
export class FleetEndpointSet implements FleetEndpoints {
  readonly #groups = new Map<string, readonly FleetEndpoint[]>();
  #byIp = new Map<number, FleetEndpoint[]>();

  /** Replaces the group's endpoints; returns true when they changed. */
  replace(group: string, endpoints: readonly FleetEndpoint[]): boolean {
    const old = this.#groups.get(group) ?? [];
    const key = (e: FleetEndpoint): string => `${e.kind} ${e.ip} ${e.port ?? '*'} ${e.source}`;
    const same = old.length === endpoints.length && old.every((e, i) => key(e) === key(endpoints[i] as FleetEndpoint));
    if (same) return false;
    this.#groups.set(group, [...endpoints]);
    const byIp = new Map<number, FleetEndpoint[]>();
    for (const list of this.#groups.values()) {
      for (const e of list) {
        const at = byIp.get(e.ip);
        if (at === undefined) byIp.set(e.ip, [e]);
        else at.push(e);
      }
    }
    this.#byIp = byIp;
    return true;
  }

  find(ip: number, port: number): FleetEndpoint | null {
    const at = this.#byIp.get(ip);
    if (at === undefined) return null;
    for (const e of at) if (e.port === null || e.port === port) return e;
    return null;
  }

  /** Every endpoint, for start-up logs and `policy explain`. */
  list(): FleetEndpoint[] {
    return [...this.#groups.values()].flat();
  }
}
