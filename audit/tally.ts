/**
 * Counts kept as plain numbers on the per-connection path and handed to prom-client when it
 * collects (every scrape, every cluster merge: prom-client calls a metric's `collect` before it
 * reads the metric's values).
 *
 * Why: prom-client hashes the label object into a string on every `inc`/`dec`, even through a
 * child from `labels()`; with five such calls per CONNECT+TLS connection that was ~2.5 % of the
 * proxy's CPU (BENCHMARKS.md, "Proxy (network edge)"). A tally is one addition on a cell found by
 * a few Map lookups on the (closed, hence bounded) label values, with nothing allocated; a scrape
 * sees exactly the same numbers, because collect runs first.
 *
 * audit/ imports only policy/errors.ts from our code.
 */

/** One label combination: its labels as prom-client wants them, and what it has not yet been told. */
export interface TallyCell<L> {
  readonly labels: L;
  /** Counters: increments since the last collect. Gauges: the current value. */
  n: number;
}

/**
 * Cells by label values, up to four labels, in nested Maps (one level per label) so that a lookup
 * builds no key string and allocates nothing once the cell exists. `make` turns the values into
 * prom-client's label object, once per combination. Callers pass values from closed sets only.
 */
export class TallyCells<L> {
  private readonly root = new Map<string, unknown>();
  private readonly all: TallyCell<L>[] = [];

  constructor(
    private readonly depth: 1 | 2 | 3 | 4,
    private readonly make: (values: readonly string[]) => L,
  ) {}

  /** The cell of these label values (created at first use); pass exactly `depth` of them. */
  cell(a: string, b = '', c = '', d = ''): TallyCell<L> {
    let level: Map<string, unknown> = this.root;
    for (let i = 1; i < this.depth; i++) {
      const v = i === 1 ? a : i === 2 ? b : c;
      let next = level.get(v) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(v, next);
      }
      level = next;
    }
    const lastValue = this.depth === 1 ? a : this.depth === 2 ? b : this.depth === 3 ? c : d;
    let found = level.get(lastValue) as TallyCell<L> | undefined;
    if (found === undefined) {
      found = { labels: this.make([a, b, c, d].slice(0, this.depth)), n: 0 };
      level.set(lastValue, found);
      this.all.push(found);
    }
    return found;
  }

  /** Every cell created so far. */
  cells(): readonly TallyCell<L>[] {
    return this.all;
  }
}

/** Hand each counter cell's increments to prom-client (`inc`) and start them again from 0. */
export function flushCounts<L>(cells: TallyCells<L>, inc: (labels: L, n: number) => void): void {
  for (const c of cells.cells()) {
    if (c.n === 0) continue;
    inc(c.labels, c.n);
    c.n = 0;
  }
}

/** One exported series of a histogram, as prom-client's own Histogram#get() gives it. */
interface HistogramValue {
  value: number;
  labels: { le?: number | string };
  metricName: string;
}

/**
 * A histogram without labels whose observe() is a bucket search and three additions. prom-client's
 * Histogram#observe builds a closure, a label object and a label hash on every call; at two
 * decisions per connection that was ~1.8 % of the proxy's CPU. This class is registered in the
 * registry as a metric of its own and answers get() in the shape of prom-client's histograms
 * (cumulative `_bucket` series with numeric `le` and a last `+Inf`, then `_sum` and `_count`), so
 * the exposition text, the cluster aggregation (`aggregator: 'sum'`) and readers of get() see a
 * plain prom-client histogram.
 */
export class TallyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  /** Count one value (seconds, bytes…); values above the last bound count only in `+Inf`. */
  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    if (i < b.length) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramValue[] }> {
    const bucket = `${this.name}_bucket`;
    const values: HistogramValue[] = [];
    let acc = 0;
    this.bounds.forEach((le, i) => {
      acc += this.counts[i]!;
      values.push({ value: acc, labels: { le }, metricName: bucket });
    });
    values.push({ value: this.count, labels: { le: '+Inf' }, metricName: bucket });
    values.push({ value: this.sum, labels: {}, metricName: `${this.name}_sum` });
    values.push({ value: this.count, labels: {}, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}
