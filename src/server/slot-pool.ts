// A bounded pool of session slots, oldest first, with a per-source share. Two of these guard a
// proxy: sessions reading their request, and sessions awaiting a decision, an upstream connect or
// a BIND peer. Pure bookkeeping: the server decides whom to refuse from what `admit` says.

export interface PoolStats {
  readonly name: string;
  readonly inUse: number;
  readonly capacity: number;
  /** Slots one source address may hold at most. */
  readonly perSource: number;
  /** Sessions refused so far to make room (oldest yielded) or over a source's share. */
  readonly evictions: number;
}

/** The most slots one source may hold: `share` of the pool, never less than one. */
export function sourceLimit(capacity: number, share: number): number {
  return Math.max(1, Math.floor(capacity * share));
}

export class SlotPool<T> {
  readonly name: string;
  readonly capacity: number;
  readonly perSource: number;
  evictions = 0;
  // Insertion order is age: Map iteration yields the oldest first.
  readonly #slots = new Map<T, string>();
  readonly #bySource = new Map<string, number>();

  constructor(name: string, capacity: number, share: number) {
    this.name = name;
    this.capacity = capacity;
    this.perSource = sourceLimit(capacity, share);
  }

  get size(): number {
    return this.#slots.size;
  }

  get full(): boolean {
    return this.#slots.size >= this.capacity;
  }

  has(item: T): boolean {
    return this.#slots.has(item);
  }

  heldBy(source: string): number {
    return this.#bySource.get(source) ?? 0;
  }

  add(item: T, source: string): void {
    if (this.#slots.has(item)) return;
    this.#slots.set(item, source);
    this.#bySource.set(source, this.heldBy(source) + 1);
  }

  delete(item: T): boolean {
    const source = this.#slots.get(item);
    if (source === undefined) return false;
    this.#slots.delete(item);
    const left = this.heldBy(source) - 1;
    if (left === 0) this.#bySource.delete(source);
    else this.#bySource.set(source, left);
    return true;
  }

  /**
   * Who must yield so that a newcomer from `source` gets a slot: the source's own oldest when it
   * is at its share (a source competes with itself first), else the oldest of all when the pool
   * is full, else nobody. `eligible` skips slots that may not be taken (see proxy-server.ts).
   */
  victimFor(source: string, eligible: (item: T) => boolean = () => true): { item: T; overShare: boolean } | null {
    if (this.heldBy(source) >= this.perSource) {
      for (const [item, held] of this.#slots) if (held === source && eligible(item)) return { item, overShare: true };
      return null;
    }
    if (!this.full) return null;
    const item = this.oldest(eligible);
    return item === null ? null : { item, overShare: false };
  }

  oldest(eligible: (item: T) => boolean = () => true): T | null {
    for (const [item] of this.#slots) if (eligible(item)) return item;
    return null;
  }

  stats(): PoolStats {
    return {
      name: this.name,
      inUse: this.size,
      capacity: this.capacity,
      perSource: this.perSource,
      evictions: this.evictions,
    };
  }
}
