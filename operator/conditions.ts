// Status conditions in the metav1.Condition shape. Pure. As in cert-manager's conditions.go,
// lastTransitionTime moves only when a condition's status flips: a new message on a policy that
// stays refused is not a transition, and dashboards that alert on "not Ready for 10 minutes"
// must not be reset by it.

export const ConditionType = { Ready: 'Ready' } as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export const ConditionStatus = { True: 'True', False: 'False', Unknown: 'Unknown' } as const;
export type ConditionStatus = (typeof ConditionStatus)[keyof typeof ConditionStatus];

/** Why a policy is or is not Ready. */
export const ReadyReason = {
  /** The policy's current generation is in the published snapshot. */
  Published: 'Published',
  /** Passed the CRD schema but not the proxy's validation; not published (or an older generation kept). */
  InvalidSpec: 'InvalidSpec',
} as const;
export type ReadyReason = (typeof ReadyReason)[keyof typeof ReadyReason];

export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
  /** RFC 3339, second precision, as the API server stores it. */
  readonly lastTransitionTime: string;
}

export type ConditionUpdate = Omit<Condition, 'lastTransitionTime'>;

/** The CRD caps messages; a policy with hundreds of issues still gets a readable status. */
export const MAX_MESSAGE_LENGTH = 4096;

export function formatTime(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * Returns `conditions` with `update` applied: other types are kept in place, and the previous
 * lastTransitionTime is kept unless the status changed.
 */
export function setCondition(conditions: readonly Condition[], update: ConditionUpdate, now: Date): Condition[] {
  const previous = findCondition(conditions, update.type);
  const lastTransitionTime =
    previous !== undefined && previous.status === update.status ? previous.lastTransitionTime : formatTime(now);
  const next: Condition = { ...update, message: truncateMessage(update.message), lastTransitionTime };
  return previous === undefined ? [...conditions, next] : conditions.map((c) => (c.type === update.type ? next : c));
}

export function truncateMessage(message: string): string {
  return message.length <= MAX_MESSAGE_LENGTH ? message : `${message.slice(0, MAX_MESSAGE_LENGTH - 3)}...`;
}

/** Reads conditions from an untyped status, dropping entries that are not conditions. */
export function readConditions(status: unknown): Condition[] {
  if (typeof status !== 'object' || status === null) return [];
  const list = (status as { conditions?: unknown }).conditions;
  if (!Array.isArray(list)) return [];
  return list.filter(
    (c): c is Condition =>
      typeof c === 'object' &&
      c !== null &&
      typeof (c as Condition).type === 'string' &&
      typeof (c as Condition).status === 'string' &&
      typeof (c as Condition).lastTransitionTime === 'string',
  );
}
