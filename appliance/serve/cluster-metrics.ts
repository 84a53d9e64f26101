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

/**
 * The collector behind the primary's /metrics: a scrape asks every serving worker for its registry
 * and waits for the answers (at most `waitMs`; a worker that is late or dies meanwhile counts with
 * its last registry), then serves `own` merged with them.
 */
export class ClusterScrape {
  readonly #merged = new WorkerMetrics();
  readonly #pending = new Map<number, { waiting: Set<number>; done: () => void }>();
  #next = 0;

  /** `ask(id)` sends the request to every serving worker and names the worker ids it reached. */
  constructor(
    private readonly own: Registry,
    private readonly ask: (id: number) => number[],
    private readonly waitMs: number,
  ) {}

  /** What the admin listener serves. */
  exposition(): Pick<Registry, 'contentType' | 'metrics'> {
    return {
      contentType: this.own.contentType,
      metrics: async () => {
        await this.#collect();
        return (await this.#merged.merge(this.own)).metrics();
      },
    };
  }

  /** A worker's answer to request `id`. */
  answer(workerId: number, id: number, metrics: MetricJson[]): void {
    this.#merged.update(workerId, metrics);
    this.#arrived(workerId, this.#pending.get(id));
  }

  /** The worker exited: nothing waits for it, and its counters are kept (WorkerMetrics.retire). */
  gone(workerId: number): void {
    for (const p of this.#pending.values()) this.#arrived(workerId, p);
    void this.#merged.retire(workerId);
  }

  #arrived(workerId: number, p: { waiting: Set<number>; done: () => void } | undefined): void {
    p?.waiting.delete(workerId);
    if (p && p.waiting.size === 0) p.done();
  }

  #collect(): Promise<void> {
    const id = this.#next++;
    const targets = this.ask(id);
    if (targets.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve();
      };
      const timer = setTimeout(done, this.waitMs);
      this.#pending.set(id, { waiting: new Set(targets), done });
    });
  }
}
