/**
 * The answer cache: processed upstream answers (./answer.ts) by question (name, type, class), kept
 * for their TTL (bounded by dns.maxTtl when processed), bounded in entries and in bytes. A Map in
 * insertion order is the eviction order: a hit moves the entry to the end unless it is among the
 * most recently moved half (least recently used goes first, approximately). What an entry leads to (its CNAME targets) is decided again on every hit, by the listener,
 * so a policy swap applies to cached answers at once.
 */
import type { Processed } from './answer.js';

export interface CacheEntry {
  readonly answer: Processed;
  /** Milliseconds (the listener's clock) when it was stored, and when it expires. */
  readonly stored: number;
  readonly expires: number;
  /** The cache's use count when the entry last moved to the end of the order. */
  used: number;
}

export class AnswerCache {
  private readonly map = new Map<string, CacheEntry>();
  private bytes = 0;
  private uses = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {}

  static key(name: string, type: number, cls: number): string {
    return `${type}/${cls}/${name}`;
  }

  get(key: string, now: number): CacheEntry | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.expires <= now) {
      this.map.delete(key);
      this.bytes -= e.answer.body.length;
      return undefined;
    }
    // Moved to the end only when it is not among the most recently moved half: a hot name costs one
    // lookup per hit, not a delete and a set, and what is evicted is still never used recently.
    const use = ++this.uses;
    if (use - e.used > this.maxEntries >> 1) {
      this.map.delete(key);
      this.map.set(key, e);
      e.used = use;
    }
    return e;
  }

  set(key: string, answer: Processed, now: number): void {
    if (answer.ttl <= 0 || this.maxEntries <= 0) return;
    const size = answer.body.length;
    if (size > this.maxBytes) return;
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      this.bytes -= old.answer.body.length;
    }
    while (this.map.size >= this.maxEntries || this.bytes + size > this.maxBytes) {
      const first = this.map.entries().next();
      if (first.done) break;
      this.map.delete(first.value[0]);
      this.bytes -= first.value[1].answer.body.length;
    }
    this.map.set(key, { answer, stored: now, expires: now + answer.ttl * 1000, used: ++this.uses });
    this.bytes += size;
  }

  get size(): number {
    return this.map.size;
  }

  get byteSize(): number {
    return this.bytes;
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}
