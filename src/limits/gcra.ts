// Connection rate as GCRA (generic cell rate algorithm): one number per key, the theoretical
// arrival time (TAT) of the next conforming attempt. Equivalent to a token bucket holding `burst`
// tokens refilled at `perSecond`, but the state is a single timestamp, which is what the Redis
// limiter's script stores too. Pure: time comes in as an argument.

export type GcraVerdict =
  | { readonly ok: true; readonly tat: number }
  | { readonly ok: false; readonly retryAfterMs: number };

/** Float slack so that waiting exactly the advertised retryAfterMs is always enough. */
const EPSILON_MS = 1e-6;

/**
 * Decides one attempt at `now` against the stored TAT (undefined = key unseen, bucket full).
 * On ok the caller stores the returned tat; a refusal changes nothing (refused attempts do not
 * consume). retryAfterMs is rounded up to whole ms so that waiting it is sufficient.
 */
export function checkGcra(storedTat: number | undefined, now: number, perSecond: number, burst: number): GcraVerdict {
  const interval = 1000 / perSecond;
  const tolerance = interval * Math.max(1, burst);
  const tat = storedTat === undefined || storedTat < now ? now : storedTat;
  const nextTat = tat + interval;
  const allowAt = nextTat - tolerance;
  if (allowAt - now > EPSILON_MS) return { ok: false, retryAfterMs: Math.ceil(allowAt - now - EPSILON_MS) };
  return { ok: true, tat: nextTat };
}

/** A key whose TAT has passed holds a full bucket: forgetting it changes no future decision. */
export function isGcraIdle(storedTat: number, now: number): boolean {
  return storedTat <= now;
}
