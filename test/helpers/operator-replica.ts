// One `socks4-fleet operator` replica as a real process against a test control plane
// (test/operator/cluster.ts), as every operator test starts it: the operator user's kubeconfig,
// the Lease in the chart's release namespace, any free ops port, and Lease timings short enough
// that a takeover fits in a test.
import { OPERATOR_NAMESPACE, type TestCluster } from '../operator/cluster.ts';
import { startCli, type CliProcess } from './spawn.ts';

/** 2 s Lease, 1.5 s renew deadline, 250 ms retry: a standby takes over within about 2.5 s. */
export const FAST_LEASE_FLAGS = [
  '--lease-duration',
  '2s',
  '--renew-deadline',
  '1500ms',
  '--retry-period',
  '250ms',
] as const;

export interface OperatorReplicaOptions {
  readonly cluster: Pick<TestCluster, 'operatorKubeconfig'>;
  readonly redisUrl: string;
  readonly prefix: string;
  /** --identity; without it the operator's default (host-pid). */
  readonly identity?: string;
  /** More flags: --namespaces, --no-leader-elect, --log-level... */
  readonly args?: readonly string[];
  /** Extra environment (OTEL_* for tracing). */
  readonly env?: Record<string, string>;
}

export function startOperatorReplica(options: OperatorReplicaOptions): CliProcess {
  return startCli(
    [
      'operator',
      '--redis-url',
      options.redisUrl,
      '--redis-prefix',
      options.prefix,
      '--kubeconfig',
      options.cluster.operatorKubeconfig,
      '--lease-namespace',
      OPERATOR_NAMESPACE,
      ...(options.identity === undefined ? [] : ['--identity', options.identity]),
      ...FAST_LEASE_FLAGS,
      '--ops-listen',
      '127.0.0.1:0',
      ...(options.args ?? []),
    ],
    options.env,
  );
}

// Loading the Kubernetes client and connecting takes seconds; on a loaded two-core machine a
// replica has printed nothing at all after 20 s (the spawn helper's default bound).
const STARTED_WITHIN_MS = 60_000;

/** Waits for the start-up line and returns the ops port it names (the replica listens on :0). */
export async function operatorOpsPort(cli: CliProcess): Promise<number> {
  await cli.waitForOutput(/"msg":"socks4-fleet operator started"/, STARTED_WITHIN_MS);
  const port = Number(/"ops":"127\.0\.0\.1:(\d+)"/.exec(cli.output())?.[1]);
  if (!(port > 0)) throw new Error(`no ops address in the start-up line:\n${cli.output()}`);
  return port;
}
