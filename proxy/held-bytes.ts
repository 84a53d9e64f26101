/**
 * The bytes every held image of one process takes together (images.maxHeldBytes): without it, a
 * few dozen guests each fetching images of maxBytes at once (or slowly reading released ones) hold
 * maxBytes each, which a router does not have.
 */
export class HeldBytes {
  private used = 0;
  constructor(readonly limit: number) {}

  get held(): number {
    return this.used;
  }

  /** Take n bytes if they fit; false (nothing taken) when they would pass the limit. */
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

