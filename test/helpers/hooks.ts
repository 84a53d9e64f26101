/**
 * Hooks and an Observer for proxy tests without a policy engine: hosts `blocked.test` / `csam.test`
 * (and subdomains) and paths under `/blocked` are blocked; the observer records every event.
 */
import type { Decision } from '../../policy/decision.js';
import type { Hooks, Observer, Verdict } from '../../proxy/hooks.js';

export const allow: Decision = { action: 'allow', category: null, list: null, rule: 'none', reason: 'test allow' };
export const block = (category: string): Decision => ({ action: 'block', category, list: `test-${category}`, rule: 'domain', reason: 'test block' });

/** Hooks for tests: hosts named `blocked.test` / `csam.test` (and subdomains) are blocked, and URLs whose path has `/blocked`. */
export function testHooks(extra: { redirect?: Record<string, string> } = {}): Hooks & { calls: string[] } {
  const calls: string[] = [];
  const hostDecision = (host: string): Decision => {
    const h = host.toLowerCase();
    if (h === 'csam.test' || h.endsWith('.csam.test')) return block('csam');
    if (h === 'blocked.test' || h.endsWith('.blocked.test')) return block('adult');
    return allow;
  };
  const withRedirect = (decision: Decision, host: string | null): Verdict => {
    const to = host === null ? undefined : extra.redirect?.[host];
    return to === undefined || decision.action === 'block' ? { decision } : { decision, connectHost: to };
  };
  return {
    calls,
    onConnect(target) {
      calls.push(`connect ${target.host}:${target.port}`);
      return withRedirect(hostDecision(target.host), target.host);
    },
    onClientHello(hello, _conn, connectHost) {
      calls.push(`hello ${hello.sni ?? '-'} ${connectHost ?? '-'}`);
      const name = hello.sni ?? connectHost ?? null;
      if (name === null) return { decision: block('no-sni') };
      return withRedirect(hostDecision(name), name);
    },
    onRequest(url) {
      calls.push(`request ${url}`);
      const u = new URL(url);
      const d = hostDecision(u.hostname);
      return withRedirect(u.pathname.startsWith('/blocked') ? block('adult') : d, u.hostname);
    },
  };
}

export interface RecordingObserver extends Observer {
  readonly events: string[];
  count(prefix: string): number;
}

export function recordingObserver(): RecordingObserver {
  const events: string[] = [];
  return {
    events,
    count: (prefix) => events.filter((e) => e === prefix || e.startsWith(prefix + ' ')).length,
    verdict: (e) => events.push(`verdict ${e.listener} ${e.protocol} ${e.action}`),
    clientHello: (r) => events.push(`hello ${r}`),
    upstreamError: (r) => events.push(`upstream ${r}`),
    limitHit: (l) => events.push(`limit ${l}`),
    connectionOpened: (l) => events.push(`open ${l}`),
    connectionClosed: (l) => events.push(`close ${l}`),
    imageScanned: (r) => events.push(`image ${r}`),
    imageBlocked: (e) => events.push(`imageBlocked ${e.category}`),
  };
}


/** Options with test defaults: every listener on 127.0.0.1:0, private destinations allowed. */
