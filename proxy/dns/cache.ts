/**
 * The answer cache: processed upstream answers (./answer.ts) by question (name, type, class), kept
 * for their TTL (bounded by dns.maxTtl when processed), bounded in entries and in bytes. A Map in
 * insertion order is the eviction order: a hit moves the entry to the end (least recently used goes
 * first). What an entry leads to (its CNAME targets) is decided again on every hit, by the listener,
 * so a policy swap applies to cached answers at once.
 */
import type { Processed } from './answer.js';

export interface CacheEntry {
  readonly answer: Processed;
  /** Milliseconds (the listener's clock) when it was stored, and when it expires. */
  readonly stored: number;
  readonly expires: number;
}

export class AnswerCache {
  private readonly map = new Map<string, CacheEntry>();
  private bytes = 0;

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
    this.map.delete(key);
    if (e.expires <= now) {
      this.bytes -= e.answer.body.length;
      return undefined;
    }
    this.map.set(key, e);
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
    this.map.set(key, { answer, stored: now, expires: now + answer.ttl * 1000 });
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
