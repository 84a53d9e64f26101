/**
 * A compiled policy bundle as the appliance's source (config `bundle:`; docs/lists-fleet.md): one
 * origin publishes `policy.bundle` and `policy.bundle.sig`, every appliance pulls it.
 *
 * The bundle is fetched by the same machinery as a list (lists/source.ts: conditional requests,
 * SHA-256 pin, Ed25519 signature at `${source}.sig`, size bound, retries, deadline) and refreshed by
 * the same ListRefresher, as one "list" with the id `bundle` whose entry count is the total of the
 * bundle's lists. decodeBundle is its parse: a truncated, corrupt or foreign file is refused there
 * (reason `invalid`), and the last good bundle (the list cache's copy, byte for byte as signed)
 * stays in force.
 *
 * Metric labels are closed sets fixed at start, so in bundle mode they are taken from the bundle
 * that is on hand before the metrics exist: the last good copy on disk, or else one first download
 * (startup `wait`). Lists that a later bundle adds are counted under `other` until the next restart.
 */
import type { Logger } from '../log.js';
import type { Config, ListConfig } from '../config.js';
import { decodeBundle } from '../../policy/bundle.js';
import type { Policy } from '../../policy/policy.js';
import { ListCache } from './cache.js';
import { fetchOptionsFromConfig, fetchSource, prepareSource, type PreparedSource } from './source.js';

/** The refresher's list id of the bundle (its label in `safespot_policy_*{list}` metrics). */
export const BUNDLE_LIST_ID = 'bundle';

/** The closed label sets of the metrics. */
export interface MetricLabels {
  readonly lists: readonly string[];
  readonly categories: readonly string[];
}

/** The bundle section as a list config, so the list-source machinery prepares it. */
function bundleAsList(b: NonNullable<Config['bundle']>): ListConfig {
  return {
    id: BUNDLE_LIST_ID,
    category: BUNDLE_LIST_ID,
    kind: 'domains', // unused: a bundle is parsed by decodeBundle
    source: b.source,
    ...(b.refresh !== undefined ? { refresh: b.refresh } : {}),
    overridable: true,
    mode: 'enforce',
    ...(b.sha256 !== undefined ? { sha256: b.sha256 } : {}),
    ...(b.publicKey !== undefined ? { publicKey: b.publicKey } : {}),
    signedName: b.signedName ?? BUNDLE_LIST_ID,
    bareSignature: b.bareSignature,
    ...(b.headers !== undefined ? { headers: b.headers } : {}),
    maxBytes: b.maxBytes,
    maxShrinkPercent: b.maxShrinkPercent,
  };
}

/** The prepared source of `config.bundle` (throws ERR_CONFIG_INVALID: unreadable key, bad URL, …). */
export function prepareBundleSource(bundle: NonNullable<Config['bundle']>): PreparedSource {
  return prepareSource(bundleAsList(bundle));
}

/** Verify and load a bundle's bytes (throws ERR_BUNDLE_CORRUPT). */
export function loadBundle(body: Uint8Array): Policy {
  return decodeBundle(body);
}

/** Entries of a bundle: the total of its URL and image lists (the refresher's shrink check compares it). */
export function bundleEntries(policy: Policy): number {
  return policy.lists.reduce((n, l) => n + l.entries, 0);
}

/** Labels of a lists config: the configured list ids and categories. */
export function configLabels(config: Readonly<Config>): MetricLabels {
  return { lists: config.lists.map((l) => l.id), categories: [...new Set(config.lists.map((l) => l.category))] };
}

/** Labels of a bundle's policy, plus the `bundle` list itself. */
export function policyLabels(policy: Policy | null): MetricLabels {
  const lists = policy ? policy.lists.map((l) => l.id) : [];
  return {
    lists: [...new Set([BUNDLE_LIST_ID, ...lists])],
    categories: policy ? [...new Set(policy.lists.map((l) => l.category))] : [],
  };
}

/**
 * The metric labels for `config`. In bundle mode: from the last good bundle in the list cache, or
 * (nothing cached, startup `wait`) from one download, which is then stored as the last good copy so
 * the refresher starts from it (no second download). Never throws: a bundle that cannot be had now
 * gives the `bundle` label alone, and the PolicyManager reports the failure (metrics, journal).
 */
export async function metricLabels(config: Readonly<Config>, log: Logger): Promise<MetricLabels> {
  const b = config.bundle;
  if (!b) return configLabels(config);
  const cache = ListCache.forStateDir(config.state.dir, { warn: (m) => log.warn(m) });
  try {
    const cached = await cache.read(BUNDLE_LIST_ID);
    if (cached) return policyLabels(loadBundle(cached.body));
  } catch (err) {
    log.warn('the cached policy bundle is unusable', { error: (err as Error).message });
  }
  if (config.sources.startup !== 'wait') return policyLabels(null);
  let opts: ReturnType<typeof fetchOptionsFromConfig> | undefined;
  try {
    const src = prepareBundleSource(b);
    opts = fetchOptionsFromConfig(config.sources);
    const res = await fetchSource(src, opts);
    if (res.status !== 'updated') return policyLabels(null);
    const policy = loadBundle(res.body);
    const now = Date.now();
    await cache.write(BUNDLE_LIST_ID, res.body, {
      entries: bundleEntries(policy),
      fetchedAt: now,
      ...(res.etag !== undefined ? { etag: res.etag } : {}),
      ...(res.lastModified !== undefined ? { lastModified: res.lastModified } : {}),
      ...(res.signedVersion !== undefined ? { signedVersion: res.signedVersion } : {}),
      source: src.display,
    });
    return policyLabels(policy);
  } catch (err) {
    // The PolicyManager's first load tries again and counts the failure where metrics exist.
    log.warn('policy bundle not available for the metric labels yet', { error: (err as Error).message });
    return policyLabels(null);
  } finally {
    await opts?.dispatcher.close().catch(() => undefined);
  }
}
