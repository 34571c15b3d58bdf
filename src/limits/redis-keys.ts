// The Redis keys of fleet-wide limits, under the fleet's prefix (src/redis/keys.ts):
//
//   <p>:v1:{<p>:<rule>}:rate:<kind>         GCRA theoretical arrival time (string, ms)
//   <p>:v1:{<p>:<rule>}:sessions:<kind>     ZSET of session leases scored by expiry (ms)
//   <p>:v1:{<p>:<rule>}:bandwidth:<kind>    bandwidth bucket: "tokens updatedAt" (string)
//
// <kind> is `rule`, `ip:<encoded address>` or `user:<encoded USERID>`. The hash tag `{...}` puts
// every key of one rule in one Cluster slot, which is what lets a single script decide all of a
// session's limits in one round trip; the price is that one rule's limit traffic lands on one
// shard. Rule ids and USERIDs are encoded (src/limits/keys.ts), so neither can contain `{`, `}`,
// `:` or control bytes and no value can leave its own key.

import { SCHEMA_VERSION } from '../redis/keys.ts';
import { encodeKeyPart, encodeRuleId } from './keys.ts';
import type { AdmitRequest, LimitKey } from './types.ts';

export type LimitKind = 'rate' | 'sessions' | 'bandwidth';

type KeyRequest = Pick<AdmitRequest, 'ruleId' | 'sourceIp' | 'userId'>;

/** The Redis key of one limit of one rule for one client, e.g. `p:v1:{p:ns%2Fpol%2Fweb}:rate:ip:10.0.0.1`. */
export function limitKey(prefix: string, limit: LimitKind, key: LimitKey, req: KeyRequest): string {
  const base = `${prefix}:${SCHEMA_VERSION}:{${prefix}:${encodeRuleId(req.ruleId)}}:${limit}`;
  switch (key) {
    case 'Rule':
      return `${base}:rule`;
    case 'SourceIP':
      return `${base}:ip:${encodeKeyPart(req.sourceIp)}`;
    case 'UserID':
      return `${base}:user:${encodeKeyPart(req.userId)}`;
  }
}
