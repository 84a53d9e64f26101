/**
 * A bounded cache with least-recently-used eviction, approximated by two generations of Maps: new
 * and refreshed keys go to `young`; when `young` is full it becomes `old` and the previous `old` is
 * dropped whole. A hit in `old` moves the key to `young`. So at most 2 × capacity keys are held,
 * every key used within the last `capacity` insertions survives, and a hit in `young` (the common
 * case under load) is one Map lookup with no reordering: cheaper than a strict LRU's delete + set.
 */
export class LruCache<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  readonly capacity: number;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`cache capacity ${capacity} must be a positive integer`);
    this.capacity = capacity;
  }

  get(key: K): V | undefined {
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const o = this.old.get(key);
    if (o !== undefined) {
      this.old.delete(key);
      this.set(key, o);
    }
    return o;
  }

  set(key: K, value: V): void {
    if (this.young.size >= this.capacity) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }

  /** Keys held (at most 2 × capacity). */
  get size(): number {
    return this.young.size + this.old.size;
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }
}
