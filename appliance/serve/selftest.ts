/**
 * The self-test: configured canaries (a URL or host per category that must be blocked, such as the
 * test URLs list providers put in their lists) are decided through the live policy on a schedule.
 * A canary passes when it is blocked under its expected category. Results go to the metrics and
 * the journal, so an auditor can ask "does a test URL get blocked right now?" and "did it all period?".
 */
import { request } from 'node:http';
import type { Decision, Subject } from '../../policy/decision.js';

export interface Canary {
  /** The bounded id from the config (appliance/config.ts CANARY_ID): its name in metrics and journal. */
  readonly id: string;
  readonly category: string;
  readonly url?: string | undefined;
  readonly host?: string | undefined;
}

export interface CanaryResult {
  readonly id: string;
  readonly category: string;
  readonly ok: boolean;
  /** Why it failed, without the canary's URL (canaries can come from a hashed list's provider). */
  readonly detail: string;
}

export function canarySubject(c: Canary): Subject | null {
  if (c.url) return { kind: 'url', url: c.url };
  if (c.host) return { kind: 'host', host: c.host };
  return null;
}

/** Decide every canary with `decide`; one result per canary. */
export function runCanaries(canaries: readonly Canary[], decide: ((s: Subject) => Decision) | null): CanaryResult[] {
  return canaries.map((c) => {
    const subject = canarySubject(c);
    const r = { id: c.id, category: c.category };
    if (!subject) return { ...r, ok: false, detail: 'canary has neither url nor host' };
    if (!decide) return { ...r, ok: false, detail: 'no policy loaded' };
    const d = decide(subject);
    if (d.action !== 'block') return { ...r, ok: false, detail: `not blocked (action ${d.action})` };
    if (d.category !== c.category) return { ...r, ok: false, detail: `blocked as ${d.category ?? 'none'}, expected ${c.category}` };
    return { ...r, ok: true, detail: `blocked by list ${d.list ?? '?'}` };
  });
}

/**
 * Ask the forward listener itself for an http:// canary, marked as a self-test (loopback clients may
 * mark requests with `X-Safespot-Selftest`; their verdicts count under the `selftest` listener, never
 * as guest traffic). Resolves with an error text, or null when the listener answered with a block.
 */
export function probeForwardListener(host: string, port: number, url: string, timeoutMs = 5000): Promise<string | null> {
  const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    let host: string;
    try {
      host = new URL(url).host;
    } catch {
      resolve('canary url does not parse');
      return;
    }
    const req = request({ host: target, port, method: 'GET', path: url, headers: { host, 'x-safespot-selftest': 'selftest', connection: 'close' }, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 403 ? null : `listener answered ${res.statusCode ?? '?'} instead of a block`);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(`listener unreachable (${err.message})`));
    req.end();
  });
}

/**
 * The category gauge's value for each category: the minimum of its canaries (1 only when every
 * canary of the category passed). A last-one-wins gauge hid a failing canary behind a passing one.
 */
export function categoryResults(results: readonly CanaryResult[]): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const r of results) out.set(r.category, (out.get(r.category) ?? true) && r.ok);
  return out;
}
