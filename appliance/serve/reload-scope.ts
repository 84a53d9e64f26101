/**
 * What a reload changes, and what only a restart does. A reload (SIGHUP, POST /reload) applies the
 * policy side of a new config (lists, allow, profiles, SafeSearch, interception choices, image
 * matching options, journal recording options through the hooks), the self-test (canaries and
 * interval) and the PAC file's `admin.pacProxy`. The rest is read once at start: listeners and
 * their limits, the admin listener, clients, upstream, TLS and image-tap settings, the CA, the
 * journal and state paths, workers. A reload that changes any of those says so: the keys come back
 * in the answer (`notApplied`) and in a warning, instead of an "ok" that silently did not apply.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Config } from '../config.js';

/** Keys (dotted) read only at start. A parent key covers everything under it. */
const START_ONLY: readonly string[] = [
  'listeners',
  'admin.host',
  'admin.port',
  'admin.tokenFile',
  'admin.serveCa',
  'clients',
  'upstream',
  'tls',
  'limits',
  'blockPage',
  'requests',
  'images.enabled',
  'images.maxBytes',
  'images.timeout',
  'images.unscanned',
  'images.maxHeldBytes',
  'intercept.upstreamCa',
  'intercept.mintsPerMinute',
  'ca',
  'journal.path',
  'journal.retentionDays',
  'journal.eventsPerMinute',
  'journal.maxBytes',
  'journal.alertPercent',
  'state',
  'sources',
  'workers',
];

function at(c: unknown, path: string): unknown {
  let v: unknown = c;
  for (const k of path.split('.')) v = v === null || v === undefined ? undefined : (v as Record<string, unknown>)[k];
  return v;
}

/** The start-only keys whose value differs between the running config and the new one. */
export function startOnlyChanges(running: Readonly<Config>, next: Readonly<Config>): string[] {
  return START_ONLY.filter((k) => !isDeepStrictEqual(at(running, k), at(next, k)));
}

/** The self-test on its interval, rescheduled when a reload changes `selftest.interval`. */
export class SelftestTimer {
  #timer: NodeJS.Timeout;
  #interval: number;

  constructor(
    private readonly run: () => void,
    interval: number,
  ) {
    this.#interval = interval;
    this.#timer = this.#start();
  }

  #start(): NodeJS.Timeout {
    const t = setInterval(this.run, this.#interval);
    t.unref();
    return t;
  }

  get interval(): number {
    return this.#interval;
  }

  reschedule(interval: number): void {
    if (interval === this.#interval) return;
    clearInterval(this.#timer);
    this.#interval = interval;
    this.#timer = this.#start();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
