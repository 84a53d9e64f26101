/**
 * The prom-client process and Node.js metrics that safespot exports, chosen one by one, and how
 * the two whose prom-client aggregation does not suit us add up across worker processes. Kept
 * apart from audit/metrics.ts, which defines safespot's own metrics: these are prom-client's,
 * and only picked and registered here. audit/metrics.ts re-exports DEFAULT_METRICS_EXPORTED.
 *
 * audit/ imports only policy/errors.ts from our code.
 */
import { collectDefaultMetrics, Registry, type Aggregator } from 'prom-client';

/**
 * The prom-client default metrics we export, chosen one by one. Left out on purpose:
 * `nodejs_active_{handles,requests,resources}_total` (gauges named like counters, which
 * `promtool check metrics` rejects), the per-space heap gauges and most event-loop-lag summaries
 * (noise on an appliance dashboard).
 */
export const DEFAULT_METRICS_EXPORTED: readonly string[] = [
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_cpu_seconds_total',
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'process_virtual_memory_bytes',
  'process_heap_bytes',
  'process_open_fds',
  'process_max_fds',
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p99_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_active_handles',
  'nodejs_active_requests',
  'nodejs_active_resources',
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_external_memory_bytes',
  'nodejs_version_info',
  'nodejs_gc_duration_seconds',
];

/**
 * Aggregation across worker processes of the defaults whose prom-client choice does not suit us:
 * the appliance started when its first process did (prom-client omits the metric), and the fd
 * limit is per process (a sum would promise more than any process has). CPU, memory, handles and
 * open fds sum to the appliance's total; event-loop lag keeps prom-client's average/min/max.
 */
const DEFAULT_METRIC_AGGREGATORS: Readonly<Record<string, Aggregator>> = {
  process_start_time_seconds: 'min',
  process_max_fds: 'min',
};

/** prom-client registers all its defaults at once; collect them aside and keep the chosen ones. */
export function registerChosenDefaults(target: Registry): void {
  const scratch = new Registry();
  collectDefaultMetrics({ register: scratch });
  for (const name of DEFAULT_METRICS_EXPORTED) {
    const metric = scratch.getSingleMetric(name);
    if (!metric) continue;
    const aggregator = DEFAULT_METRIC_AGGREGATORS[name];
    if (aggregator) (metric as unknown as { aggregator: Aggregator }).aggregator = aggregator;
    target.registerMetric(metric);
  }
}
