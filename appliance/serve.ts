/**
 * `serve`: the composition root. Wires the configuration to the policy (compiled from the lists,
 * with the last good bundle on disk as fallback), the evidence (metrics, journal), the proxy
 * listeners with their decision hooks, the admin listener and the self-test; handles reloads.
 *
 * Fail closed: when no valid policy can be loaded, the listeners still run but every decision is a
 * block (rule `no-policy`), `safespot_filtering_active` is 0, /readyz says why, and the journal
 * records the inactive period.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createMetrics, combineObservers, metricsObserver, type Metrics, type ListenerLabel } from '../audit/metrics.js';
import { openJournal, journalObserver, type Journal } from '../audit/journal.js';
import { encodeBundle, decodeBundle } from '../policy/bundle.js';
import { SafespotError } from '../policy/errors.js';
import { CidrSet } from '../policy/ip.js';
import { compilePolicy, PolicyHolder, type Policy } from '../policy/policy.js';
import { createPolicyHooks } from '../proxy/policy-hooks.js';
import { startProxy, type ProxyHandle, type ProxyOptions } from '../proxy/server.js';
import { readTokenFile, startAdmin, type AdminHandle } from './admin.js';
import type { Config } from './config.js';
import { scanImage } from './image-scan.js';
import { compileInputFromConfig } from './lists-load.js';
import type { Logger } from './log.js';
import { runCanaries } from './selftest.js';

export interface Appliance {
  readonly holder: PolicyHolder;
  readonly metrics: Metrics;
  readonly journal: Journal;
  readonly proxy: ProxyHandle;
  readonly admin: AdminHandle | null;
  /** The config in force. */
  config(): Readonly<Config>;
  /** Rebuild the policy from `next` (or the current config); the old one keeps serving on failure. */
  reload(next?: Readonly<Config>): Promise<{ ok: boolean; version?: string; error?: string }>;
  /** Run the self-test now. */
  selftest(): void;
  /** Stop accepting, drain (bounded), flush the journal. */
  close(): Promise<void>;
}

const BUNDLE_FILE = 'last-good.bundle';

function proxyOptions(c: Readonly<Config>): ProxyOptions {
  return {
    listeners: c.listeners,
    clients: CidrSet.parse(c.clients),
    upstream: {
      hosts: c.upstream.hosts,
      allowPrivate: c.upstream.allowPrivate,
      ports: c.upstream.ports,
      connectTimeoutMs: c.upstream.connectTimeout,
      dnsCacheTtlMs: c.upstream.dnsCacheTtl,
    },
    tls: c.tls,
    limits: c.limits,
    blockPage: c.blockPage,
    images: { enabled: c.images.enabled, maxBytes: c.images.maxBytes, timeout: c.images.timeout, unscanned: c.images.unscanned },
  };
}

function listenerLabels(c: Readonly<Config>): ListenerLabel[] {
  const out: ListenerLabel[] = [];
  if (c.listeners.forward) out.push('forward');
  if (c.listeners.http) out.push('http');
  if (c.listeners.tls) out.push('tls');
  return out;
}

/** Write the bundle atomically: temp file, then rename over the old one. */
function saveLastGood(dir: string, bytes: Uint8Array): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `${BUNDLE_FILE}.tmp-${process.pid}`);
  writeFileSync(tmp, bytes, { mode: 0o600 });
  renameSync(tmp, join(dir, BUNDLE_FILE));
}

export async function startAppliance(initial: Readonly<Config>, log: Logger): Promise<Appliance> {
  let config = initial;
  const categories = [...new Set(config.lists.map((l) => l.category))];
  const metrics = createMetrics({ categories, lists: config.lists.map((l) => l.id), listeners: listenerLabels(config) });
  const journal = openJournal({
    path: config.journal.path,
    retentionDays: config.journal.retentionDays,
    recordUrls: config.journal.recordUrls,
    recordClients: config.journal.recordClients,
  });
  const holder = new PolicyHolder();
  let lastError: string | null = null;

  const install = (policy: Policy, how: string): void => {
    holder.swap(policy);
    const now = Date.now() / 1000;
    for (const l of policy.lists) {
      metrics.policyEntries.set(l.id, l.entries);
      metrics.policyLastRefresh.set(l.id, now);
      journal.record({ kind: 'list_load', list: l.id, category: l.category, detail: `${how}: ${l.entries} entries` });
    }
    metrics.policyInfo.set(policy.version);
    metrics.filteringActive.set(true);
    journal.record({ kind: 'filtering_active', detail: `policy ${policy.version} (${how})` });
    lastError = null;
  };

  const build = async (c: Readonly<Config>): Promise<Policy> => {
    const policy = compilePolicy(compileInputFromConfig(c));
    for (const l of policy.parts.meta.lists) {
      const r = l.report;
      if (r.malformed > 0) log.warn('list has malformed lines', { list: l.id, malformed: r.malformed, lines: r.malformedLines });
    }
    for (const l of policy.parts.meta.images ?? []) {
      if (l.report.malformed > 0) log.warn('list has malformed lines', { list: l.id, malformed: l.report.malformed, lines: l.report.malformedLines });
    }
    try {
      saveLastGood(c.state.dir, encodeBundle(policy));
    } catch (err) {
      log.warn('could not save the last good policy bundle', { error: (err as Error).message });
    }
    return policy;
  };

  try {
    install(await build(config), 'compiled');
  } catch (err) {
    lastError = err instanceof SafespotError ? `${err.code}: ${err.message}` : String(err);
    log.error('policy could not be compiled', { error: lastError, details: err instanceof SafespotError ? err.details : [] });
    for (const l of config.lists) {
      metrics.policyRefreshFailures.inc(l.id, 'invalid');
      journal.record({ kind: 'list_failure', list: l.id, category: l.category, detail: lastError.slice(0, 300) });
    }
    const saved = join(config.state.dir, BUNDLE_FILE);
    if (existsSync(saved)) {
      try {
        install(decodeBundle(readFileSync(saved)), 'last good bundle');
        log.warn('serving the last good policy bundle', { path: saved });
      } catch (err2) {
        log.error('the last good bundle is unusable', { error: (err2 as Error).message });
      }
    }
    if (!holder.current) {
      metrics.filteringActive.set(false);
      journal.record({ kind: 'filtering_inactive', detail: 'no valid policy: failing closed' });
    }
  }

  const observer = combineObservers(metricsObserver(metrics), journalObserver(journal));
  const hookOptions = (c: Readonly<Config>) => ({
    recordUrls: c.journal.recordUrls,
    recordClients: c.journal.recordClients,
    blockFronting: c.tls.blockFronting,
    noSni: c.tls.noSni,
    ech: c.tls.ech,
    scanImage: (bytes: Uint8Array) => scanImage(bytes, { dihedral: c.images.dihedral }),
  });
  const token = config.admin?.tokenFile ? readTokenFile(config.admin.tokenFile) : undefined;
  const admin = config.admin
    ? await startAdmin({
        host: config.admin.host,
        port: config.admin.port,
        ...(token ? { token } : {}),
        registry: metrics.registry,
        isReady: () => {
          const reasons: string[] = [];
          if (!holder.current) reasons.push(`no valid policy loaded${lastError ? ` (${lastError})` : ''}`);
          return { ready: reasons.length === 0, reasons };
        },
      })
    : null;
  // The admin listener is never a destination, not even with upstream.allowPrivate.
  const ownEndpoints = admin && config.admin ? [{ host: config.admin.host, port: admin.port }] : [];
  const proxy = await startProxy({ ...proxyOptions(config), ownEndpoints }, createPolicyHooks(holder, observer, hookOptions(config)), observer).catch(
    async (err: unknown) => {
      await admin?.close();
      journal.close();
      throw err;
    },
  );

  const selftest = (): void => {
    const policy = holder.current;
    const results = runCanaries(config.selftest.canaries, policy ? (s) => policy.decide(s) : null);
    metrics.selftestLastRun.set(Date.now() / 1000);
    for (const r of results) {
      metrics.selftestSuccess.set(r.category, r.ok);
      journal.record({ kind: 'selftest', category: r.category, action: r.ok ? 'pass' : 'fail', detail: r.detail });
      if (!r.ok) log.error('self-test failed', { category: r.category, detail: r.detail });
    }
  };
  selftest();
  const timer = setInterval(selftest, config.selftest.interval);
  timer.unref();

  return {
    holder,
    metrics,
    journal,
    proxy,
    admin,
    config: () => config,
    async reload(next) {
      const c = next ?? config;
      try {
        const policy = await build(c);
        install(policy, 'reloaded');
        if (next) {
          config = next;
          proxy.setHooks(createPolicyHooks(holder, observer, hookOptions(next)));
        }
        log.info('policy reloaded', { version: policy.version });
        selftest();
        return { ok: true, version: policy.version };
      } catch (err) {
        const message = err instanceof SafespotError ? `${err.code}: ${err.message}` : String(err);
        log.error('reload refused; the previous policy keeps serving', { error: message });
        for (const l of c.lists) {
          metrics.policyRefreshFailures.inc(l.id, 'invalid');
          journal.record({ kind: 'list_failure', list: l.id, category: l.category, detail: message.slice(0, 300) });
        }
        return { ok: false, error: message };
      }
    },
    selftest,
    async close() {
      clearInterval(timer);
      await proxy.close(config.limits.drainTimeout);
      await admin?.close();
      journal.close();
    },
  };
}
