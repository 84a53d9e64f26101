/**
 * /metrics of a `serve` cluster (`workers` > 1): the primary's own registry (policy, self-test,
 * worker restarts, its process) merged with every worker's (traffic, connections, their processes)
 * by prom-client's AggregatorRegistry, which applies each metric's `aggregator` (audit/metrics.ts
 * says which metric takes which, and why).
 *
 * Two rules keep the counters honest across worker deaths and slow answers:
 * - a worker that does not answer in time is represented by the last registry it sent (stale, but
 *   never a drop that Prometheus would read as a counter reset);
 * - when a worker dies, the counters and histograms it last sent are kept ("retired") and added to
 *   every later answer, so the merged counters never go down. What it counted between its last
 *   answer and its death is lost from the metrics (the journal has its blocks: it batches every
 *   250 ms). Its gauges (open connections, memory) are dropped: they died with it.
 */
import { AggregatorRegistry, type Registry } from 'prom-client';

/** One metric as getMetricsAsJSON() gives it (the fields we look at). */
export interface MetricJson {
  name: string;
  type: string;
  aggregator?: string;
  values: unknown[];
}

const CUMULATIVE = new Set(['counter', 'histogram']);

export class WorkerMetrics {
  readonly #last = new Map<number, MetricJson[]>();
  #retired: MetricJson[] = [];
  #retiring: Promise<void> = Promise.resolve();
  /** Ids of retired workers (cluster worker ids are never reused). */
  readonly #gone = new Set<number>();

  /** A worker's fresh registry (by worker id). */
  update(id: number, metrics: MetricJson[]): void {
    if (this.#gone.has(id)) return; // a late answer of a retired worker: its counters are in already
    this.#last.set(id, metrics);
  }

  /**
   * The worker is gone: keep its counters and histograms, drop the rest. Retirements run one after
   * another, and the worker's registry leaves `#last` only when its counters are in `#retired`, so a
   * scrape in between never sees them missing.
   */
  retire(id: number): Promise<void> {
    this.#gone.add(id);
    this.#retiring = this.#retiring.then(async () => {
      const last = this.#last.get(id);
      if (!last) return;
      const cumulative = last.filter((m) => CUMULATIVE.has(m.type));
      const merged = AggregatorRegistry.aggregate([this.#retired, cumulative] as object[]);
      const retired = (await merged.getMetricsAsJSON()) as unknown as MetricJson[];
      this.#retired = retired;
      this.#last.delete(id);
    });
    return this.#retiring;
  }

  /** Worker ids with a registry on hand. */
  ids(): number[] {
    return [...this.#last.keys()];
  }

  /** The merged registry: `own` + every worker's last registry + the retired counters. */
  async merge(own: Registry): Promise<Registry> {
    const parts: object[] = [await own.getMetricsAsJSON(), ...this.#last.values()];
    if (this.#retired.length > 0) parts.push(this.#retired);
    return AggregatorRegistry.aggregate(parts);
  }
}
