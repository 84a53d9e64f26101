/**
 * The DNS decision hook: what the listener asks of the policy for one question name and for each
 * name an answer leads to. It is the DNS counterpart of proxy/policy-hooks.ts (the same PolicyHolder,
 * the same host-only decision `decideHost` that SNI and CONNECT use, so a name is blocked by DNS
 * exactly when a connection to it would be), plus what only DNS has: the bypass signals
 * (policy/dns-signals.ts) and SafeSearch by CNAME (policy/safe-search.ts, the table the proxy uses).
 *
 * Fails closed: no policy loaded → every name is blocked (answered locally, never forwarded).
 * The listener reports (counts, journals); the hook only decides.
 */
import type { Decision } from '../../policy/decision.js';
import { dnsSignal, type DnsSignalKind } from '../../policy/dns-signals.js';
import { BLOCK_NO_POLICY, type PolicyHolder } from '../../policy/policy.js';
import { safeSearchHost } from '../../policy/safe-search.js';

export type DnsVerdict =
  /** Ask upstream (allow, or a monitor-mode match: passed and recorded). */
  | { readonly kind: 'forward'; readonly decision: Decision }
  /** Answer locally as blocked (block addresses / NODATA, or NXDOMAIN by option); never forwarded. */
  | { readonly kind: 'block'; readonly decision: Decision }
  /** A bypass signal, answered locally with this answer; never forwarded. */
  | { readonly kind: 'signal'; readonly signal: DnsSignalKind; readonly answer: 'nxdomain' | 'nodata'; readonly decision: Decision }
  /** SafeSearch: answer with a CNAME to `target` and the target's own records. */
  | { readonly kind: 'cname'; readonly target: string; readonly decision: Decision };

export interface DnsHooks {
  /** The question's name (lower case, no trailing dot) and type, for this client address. */
  onQuestion(name: string, type: number, client: string): DnsVerdict;
  /** A name an upstream answer leads to (CNAME/DNAME target, SVCB TargetName, owner name). */
  onAnswerName(name: string, client: string): Decision;
}

function signalDecision(kind: DnsSignalKind): Decision {
  return Object.freeze({
    action: 'block',
    category: 'bypass',
    list: null,
    rule: 'none',
    reason: `bypass signal answered locally (${kind})`,
  });
}

const SIGNAL_DECISIONS: Record<DnsSignalKind, Decision> = {
  encrypted_dns_canary: signalDecision('encrypted_dns_canary'),
  private_relay: signalDecision('private_relay'),
  designated_resolver: signalDecision('designated_resolver'),
};

export function createDnsHooks(holder: PolicyHolder): DnsHooks {
  return {
    onQuestion(name, _type, client) {
      const signal = dnsSignal(name);
      if (signal !== null) return { kind: 'signal', signal: signal.kind, answer: signal.answer, decision: SIGNAL_DECISIONS[signal.kind] };
      const policy = holder.current;
      if (policy === null) return { kind: 'block', decision: BLOCK_NO_POLICY };
      // The root and single-label names have no host to decide: policy/ blocks what it cannot read.
      const decision = policy.decideHost(name, client);
      if (decision.action === 'block') return { kind: 'block', decision };
      if (policy.profileFor(client).safeSearch) {
        const target = safeSearchHost(name);
        if (target !== null && target !== name) return { kind: 'cname', target, decision };
      }
      return { kind: 'forward', decision };
    },
    onAnswerName(name, client) {
      const policy = holder.current;
      return policy === null ? BLOCK_NO_POLICY : policy.decideHost(name, client);
    },
  };
}
