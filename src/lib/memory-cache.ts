/**
 * A bounded in-process cache: least recently used entries go first once `maxEntries` or the total
 * `maxWeight` would be exceeded, and entries older than `ttlMs` are not returned. A Map keeps
 * insertion order, so re-inserting on every hit is enough to make it an LRU.
 */
export class MemoryCache<V> {
  private readonly entries = new Map<string, { value: V; weight: number; at: number }>();
  private weight = 0;

  constructor(
    private readonly options: {
      maxEntries: number;
      /** @default Infinity */
      maxWeight?: number;
      /** @default Infinity */
      ttlMs?: number;
      /** The weight of a value (e.g. its bytes). @default 1 */
      weigh?: (value: V) => number;
      now?: () => number;
    },
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const now = this.options.now?.() ?? Date.now();
    if (this.options.ttlMs !== undefined && now - entry.at > this.options.ttlMs) {
      this.delete(key);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Stores `value` unless it alone weighs more than the whole cache may. */
  set(key: string, value: V): void {
    const weight = this.options.weigh?.(value) ?? 1;
    const maxWeight = this.options.maxWeight ?? Number.POSITIVE_INFINITY;
    this.delete(key);
    if (weight > maxWeight) return;
    this.entries.set(key, { value, weight, at: this.options.now?.() ?? Date.now() });
    this.weight += weight;
    for (const [oldest] of this.entries) {
      if (this.entries.size <= this.options.maxEntries && this.weight <= maxWeight) break;
      this.delete(oldest);
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.weight -= entry.weight;
  }

  /** Drops every entry whose key starts with `prefix`. */
  deletePrefix(prefix: string): void {
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.delete(key);
  }
}
