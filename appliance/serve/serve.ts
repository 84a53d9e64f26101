/**
 * `serve`: the composition root. Wires the configuration to the policy (compiled from the lists,
 * with the last good bundle on disk as fallback), the evidence (metrics, journal), the proxy
 * listeners with their decision hooks, the admin listener and the self-test; handles reloads.
 *
 * `workers` > 1 runs the same pieces split over a cluster (serve/cluster.ts, serve/worker.ts,
 * docs/workers.md); `workers: 1` is this file alone.
 *
 * Fail closed: when no valid policy can be loaded, the listeners still run but every decision is a
 * block (rule `no-policy`), `safespot_filtering_active` is 0, /readyz says why, and the journal
 * records the inactive period.
 */
import { createMetrics, combineObservers, metricsObserver, type Metrics } from '../../audit/metrics.js';
import { openJournal, journalObserver, type Journal } from '../../audit/journal.js';
import type { PolicyHolder } from '../../policy/policy.js';
import { createPolicyHooks } from '../../proxy/policy-hooks.js';
import { startProxy, type ProxyHandle } from '../../proxy/server.js';
import type { AdminHandle } from '../admin/listener.js';
import type { Config } from '../config.js';
import { listenerLabels, policyHookOptions, proxyOptions } from './options.js';
import { setupInterception } from './intercept-setup.js';
import type { Logger } from '../log.js';
import { reloadConfigFile, type ReloadTrigger } from './reload.js';
import { SelftestTimer, startOnlyChanges } from './reload-scope.js';
import { PolicyManager, type ReloadResult } from '../lists/policy-manager.js';
import { metricLabels } from '../lists/bundle-source.js';
import { canaryProbes, categoryResults, runCanaries, type ProbedListeners } from './selftest.js';
import { loadOrCreateIdentity } from '../../audit/identity.js';
import { loadOrCreateSiteKey, siteTagger } from '../../audit/site-tag.js';
import { noteCaInForce, noteConfigAtStart } from './admin-record.js';
import { startApplianceAdmin } from '../admin/start.js';
import { dnsProbeTarget, startDnsFromConfig } from './dns.js';
import type { DnsListenerHandle } from '../../proxy/dns/listener.js';
import { settleHeapSoon } from './settle-heap.js';

export interface Appliance {
  readonly holder: PolicyHolder;
  readonly metrics: Metrics;
  readonly journal: Journal;
  readonly proxy: ProxyHandle;
  readonly admin: AdminHandle | null;
  /** The DNS listener (listeners.dns), or null. */
  readonly dns: DnsListenerHandle | null;
  /** The config in force. */
  config(): Readonly<Config>;
  /** Apply `next` (or refresh every list of the current config); the old policy keeps serving on failure. */
  reload(next?: Readonly<Config>): Promise<ReloadResult>;
  /** SIGHUP and POST /reload: re-read the config file (when serve has one) and reload; a bad file is refused. Journaled. */
  reloadFromFile(trigger?: ReloadTrigger): Promise<ReloadResult>;
  /** Run the self-test now. */
  selftest(): Promise<void>;
  /** Stop accepting, drain (bounded), flush the journal. */
  close(): Promise<void>;
}

export interface SelftestDeps {
  readonly config: Readonly<Config>;
  readonly holder: PolicyHolder;
  /** The listeners' bound addresses (forward, transparent http and tls), when there are any. */
  readonly listeners: ProbedListeners;
  readonly metrics: Metrics;
  readonly journal: Pick<Journal, 'record'>;
  readonly log: Logger;
}

/** The canaries through the live policy and through every listener a guest reaches (selftest.ts canaryProbes). */
export async function runSelftest(d: SelftestDeps): Promise<void> {
  const { config, metrics, journal, log } = d;
  const policy = d.holder.current;
  const results = runCanaries(config.selftest.canaries, policy ? (s) => policy.decide(s) : null);
  const hostBlocked = (host: string): boolean => policy?.decide({ kind: 'host', host }).action === 'block';
  const probed = await Promise.all(config.selftest.canaries.map((c, i) => (results[i]?.ok ? Promise.all(canaryProbes(c, d.listeners, hostBlocked)) : Promise.resolve([]))));
  probed.forEach((failures, i) => {
    const failure = failures.find((f) => f !== null);
    if (failure) results[i] = { ...results[i]!, ok: false, detail: `decision ok, but ${failure}` };
  });
  metrics.selftestLastRun.set(Date.now() / 1000);
  // One series per canary, and the category's gauge the minimum of its canaries (issue 21, point 6).
  for (const [category, ok] of categoryResults(results)) metrics.selftestSuccess.set(category, ok);
  for (const r of results) {
    metrics.selftestCanary.set(r.id, r.ok);
    // The journal row names the canary by its id in `list` (a bounded word, never its URL).
    journal.record({ kind: 'selftest', category: r.category, list: r.id, action: r.ok ? 'pass' : 'fail', detail: r.detail });
    if (!r.ok) log.error('self-test failed', { canary: r.id, category: r.category, detail: r.detail });
  }
}

/**
 * What both compositions (one process, or the primary of the workers) set up first: the interception
 * CA (refusing to start without a usable one when interception or admin.serveCa is on: the error names
 * `safespot certs init`), the metrics with their closed label sets (the configured lists, or in bundle
 * mode the lists of the bundle on hand: lists/bundle-source.ts), and the journal (its one writer).
 */
export async function startEvidence(config: Readonly<Config>, log: Logger, configPath?: string) {
  const interception = await setupInterception(config);
  for (const w of interception.warnings) log.warn('interception CA', { warning: w });
  const labels = await metricLabels(config, log);
  const metrics = createMetrics({
    categories: labels.categories,
    lists: labels.lists,
    listeners: listenerLabels(config),
    canaries: config.selftest.canaries,
  });
  // The appliance's signing key (issue 21): made on first start in the state folder, never sent.
  const { identity, created } = loadOrCreateIdentity(config.state.dir, `safespot/${config.site.id}`);
  if (created) log.info('appliance identity created', { fingerprint: identity.fingerprint, key: identity.name });
  metrics.applianceInfo.set(config.site.id, identity.fingerprint);
  const journal = openJournal({
    path: config.journal.path,
    retentionDays: config.journal.retentionDays,
    recordUrls: config.journal.recordUrls,
    recordClients: config.journal.recordClients,
    eventsPerMinute: config.journal.eventsPerMinute,
    maxBytes: config.journal.maxBytes,
    alertPercent: config.journal.alertPercent,
    identity,
    checkpointIntervalMs: config.journal.checkpointInterval,
  });
  metrics.watchJournal(() => journal.stats());
  noteCaInForce(journal, interception.ca);
  noteConfigAtStart(journal, configPath);
  // Distinct blocked sites without a host on disk (audit/site-tag.ts): the key stays in state.dir.
  const siteTag = siteTagger(loadOrCreateSiteKey(config.state.dir).key);
  return { interception, labels, metrics, journal, siteTag };
}

export async function startAppliance(initial: Readonly<Config>, log: Logger, opts: { configPath?: string } = {}): Promise<Appliance> {
  let config = initial;
  const { interception, metrics, journal, siteTag } = await startEvidence(config, log, opts.configPath);
  const manager = await PolicyManager.start(config, { metrics, journal, log }).catch((err: unknown) => {
    journal.close();
    throw err;
  });
  const holder = manager.holder;

  const observer = combineObservers(metricsObserver(metrics), journalObserver(journal, { siteTag }));
  const hookOptions = policyHookOptions;
  let forwardPort: number | undefined; // bound port of the forward listener, for the PAC file
  const { admin, ownEndpoints } = await startApplianceAdmin({
    config: () => config,
    journal,
    registry: metrics.registry,
    reloadFromFile,
    forwardPort: () => forwardPort,
    routes: interception.routes,
    isReady: () => {
      const reasons: string[] = [];
      if (!holder.current) reasons.push(`no valid policy loaded${manager.lastError ? ` (${manager.lastError})` : ''}`);
      return { ready: reasons.length === 0, reasons };
    },
    cleanup: async () => {
      await manager.stop();
      journal.close();
    },
  });
  const proxy = await startProxy({ ...proxyOptions(config), ownEndpoints, ...(interception.edge ? { intercept: interception.edge } : {}) }, createPolicyHooks(holder, observer, hookOptions(config)), observer).catch(
    async (err: unknown) => {
      await admin?.close();
      await manager.stop();
      journal.close();
      throw err;
    },
  );
  forwardPort = proxy.addresses().forward?.port;
  // The DNS hooks read the holder on every question, so a reload reaches them without a swap.
  const dns = await startDnsFromConfig(config, holder, observer).catch(async (err: unknown) => {
    await proxy.close(0);
    await admin?.close();
    await manager.stop();
    journal.close();
    throw err;
  });

  const selftest = (): Promise<void> => runSelftest({ config, holder, listeners: { ...proxy.addresses(), dns: dnsProbeTarget(config, dns) }, metrics, journal, log });
  await selftest();
  const timer = new SelftestTimer(() => void selftest(), config.selftest.interval);
  // The start's garbage back at once, not when V8 next happens to run a full GC (settle-heap.ts).
  const settle = settleHeapSoon(1000, (t) => log.debug('start garbage collected', { ms: Math.round(t.ms), cpuMs: Math.round(t.cpuMs) }));

  async function reloadFromFile(trigger: ReloadTrigger = 'internal'): Promise<ReloadResult> {
    return reloadConfigFile(opts.configPath, reload, log, { journal, trigger });
  }

  async function reload(next?: Readonly<Config>): Promise<ReloadResult> {
    let result = next ? await manager.reconfigure(next) : await manager.refreshNow();
    if (result.ok && next) {
      const notApplied = startOnlyChanges(initial, next); // against what started: those are what is in force
      config = next;
      proxy.setHooks(createPolicyHooks(holder, observer, hookOptions(next)));
      timer.reschedule(next.selftest.interval);
      if (notApplied.length > 0) {
        log.warn('reloaded, but these settings are read at start only and take a restart', { notApplied });
        result = { ...result, notApplied };
      }
    }
    if (result.ok) log.info('reloaded', { version: result.version ?? null });
    else log.error('reload refused; the previous policy keeps serving', { error: result.error ?? null });
    await selftest();
    return result;
  }

  return {
    holder,
    metrics,
    journal,
    proxy,
    admin,
    dns,
    config: () => config,
    reload,
    reloadFromFile,
    selftest,
    async close() {
      timer.stop();
      clearTimeout(settle);
      await proxy.close(config.limits.drainTimeout);
      await dns?.close();
      await admin?.close();
      await manager.stop();
      journal.close();
    },
  };
}
