// Concurrency releases, batched per pod. A closed session's lease used to cost Redis one ZREM
// command of its own: a command, a reply and, at the rates of one pod, often a read and a write
// system call of Redis's own. Now a release waits at most RELEASE_DELAY_MS: an admission of the
// same key meanwhile carries it into its script (no command at all), and whatever is left goes
// out as one ZREM per key with every member released in the window. This pod's own next
// admission is never counted against a slot it already gave back (the release travels with it,
// on the same connection); other pods see the slot free at most RELEASE_DELAY_MS later, which is
// small beside how long sessions last and the 15 s a crashed pod's leases take.

/** A script's argument list stays small: beyond this, the rest goes out in the batch. */
const MAX_CARRIED = 64;
/** How long a release may wait for an admission of its key to carry it. */
export const RELEASE_DELAY_MS = 5;

export class ReleaseQueue {
  readonly #send: (key: string, members: readonly string[]) => void;
  readonly #pending = new Map<string, string[]>();
  #scheduled: NodeJS.Timeout | undefined;

  /** `send` issues the ZREM (errors are its own business: a lost release expires with its lease). */
  constructor(send: (key: string, members: readonly string[]) => void) {
    this.#send = send;
  }

  get size(): number {
    let n = 0;
    for (const members of this.#pending.values()) n += members.length;
    return n;
  }

  add(key: string, member: string): void {
    const members = this.#pending.get(key);
    if (members === undefined) this.#pending.set(key, [member]);
    else members.push(member);
    if (this.#scheduled === undefined) {
      this.#scheduled = setTimeout(this.flush, RELEASE_DELAY_MS);
      this.#scheduled.unref();
    }
  }

  /** Hands the key's pending releases to the caller's admission script (up to MAX_CARRIED). */
  take(key: string): string[] | undefined {
    const members = this.#pending.get(key);
    if (members === undefined) return undefined;
    if (members.length <= MAX_CARRIED) {
      this.#pending.delete(key);
      return members;
    }
    return members.splice(0, MAX_CARRIED);
  }

  /** Sends every pending release now, one ZREM per key. */
  flush = (): void => {
    if (this.#scheduled !== undefined) clearTimeout(this.#scheduled);
    this.#scheduled = undefined;
    for (const [key, members] of this.#pending) this.#send(key, members);
    this.#pending.clear();
  };

  /** Forgets pending releases (the caller hands leases back some other way). */
  drain(): Map<string, string[]> {
    if (this.#scheduled !== undefined) clearTimeout(this.#scheduled);
    this.#scheduled = undefined;
    const pending = new Map(this.#pending);
    this.#pending.clear();
    return pending;
  }
}
