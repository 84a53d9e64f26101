/**
 * The configuration: one zod schema, parsed once at start with every problem printed (exit 2), then
 * frozen. Everything below appliance/ receives plain, already-valid values. Every key is documented
 * in docs/configuration.md (a test keeps the two in sync).
 *
 * Durations are strings (`90s`, `15m`, `6h`) and come out as milliseconds. Relative paths are
 * relative to the config file's folder.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SafespotError } from '../policy/errors.js';
import { parseCidr } from '../policy/ip.js';
import { parseDuration } from './duration.js';
import { BUILTIN_SOURCES, builtinKind, isBuiltinSource } from './lists/builtin.js';

const duration = z.string().transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration (for example 250ms, 90s, 15m, 6h, 30d)` });
    return z.NEVER;
  }
  return ms;
});

const cidr = z.string().superRefine((text, ctx) => {
  const c = parseCidr(text);
  if (typeof c === 'string') ctx.addIssue({ code: 'custom', message: c });
});

const hostName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9._:[\]-]+$/, 'expected a host name or IP address');

const port = z.number().int().min(0).max(65535);
/** A self-test canary's id: a bounded word for a metric label (never a URL or host). */
export const CANARY_ID = /^[a-z0-9][a-z0-9_-]{0,31}$/;

const listener = z.strictObject({ host: hostName, port });

export const LIST_KINDS = ['domains', 'urls', 'hashed-urls', 'md5', 'sha1', 'sha256', 'pdq'] as const;
export type ListKind = (typeof LIST_KINDS)[number];
export const URL_LIST_KINDS: readonly ListKind[] = ['domains', 'urls', 'hashed-urls'];

const listSchema = z.strictObject({
  /** Stable id, shown in verdicts, metrics labels and the journal. */
  id: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'list ids are lower case letters, digits, . _ - (at most 64)'),
  /** csam | adult | malware | bypass | an operator's own word. */
  category: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'categories are lower case words (at most 32 characters)'),
  kind: z.enum(LIST_KINDS),
  /** A file path, or an https:// URL. */
  source: z.string().min(1),
  /** Refresh interval for URL sources. */
  refresh: duration.optional(),
  /** Whether allow entries may override this list. Lists of category csam are never overridable. */
  overridable: z.boolean().default(true),
  /** enforce blocks; monitor only records what would have been blocked. */
  mode: z.enum(['enforce', 'monitor']).default('enforce'),
  /** Expected SHA-256 (hex) of the source body. */
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/).optional(),
  /** Ed25519 public key (PEM file path) for a detached signature at `${source}.sig`. */
  publicKey: z.string().min(1).optional(),
  /** The name the signed statement must carry (`safespot sign --name`); default: the list id. */
  signedName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/, 'signed names are 1-128 letters, digits and . _ : / -').optional(),
  /** Also accept a bare signature over the bytes, which names no list or version (swaps and rollbacks pass). */
  bareSignature: z.boolean().default(false),
  /** HTTP request headers for URL sources; values `env:NAME` or `file:PATH` are read at start and never printed. */
  headers: z.record(z.string(), z.string()).optional(),
  /** Largest body accepted from a source, in bytes. */
  maxBytes: z.number().int().positive().default(256 * 1024 * 1024),
  /** Refuse an update that shrinks the list by more than this percentage. */
  maxShrinkPercent: z.number().min(0).max(100).default(50),
});

const interceptSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** Only these hosts (and subdomains) are intercepted; empty = all not excluded. */
  include: z.array(hostName).default([]),
  /** Never intercept these hosts (and subdomains); added to the shipped default exclusions. */
  exclude: z.array(hostName).default([]),
});

const profileSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/),
  clients: z.array(cidr).min(1),
  /** List ids that apply to this profile; absent = all lists. */
  lists: z.array(z.string()).optional(),
  allow: z.array(z.string()).default([]),
  safeSearch: z.boolean().optional(),
  intercept: interceptSchema.optional(),
});

const DEFAULT_CLIENTS = ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7', '::1/128'];

export const configSchema = z
  .strictObject({
    listeners: z
      .strictObject({
        forward: listener.optional(),
        http: listener.optional(),
        tls: listener.optional(),
        /** The guests' DNS, UDP and TCP on one port (proxy/dns/, docs/dns.md). */
        dns: listener.optional(),
      })
      .prefault({}),
    admin: z
      .strictObject({
        host: hostName.default('127.0.0.1'),
        port: port.default(9090),
        /** File holding a bearer token; required when host is not loopback. */
        tokenFile: z.string().optional(),
        /** Serve the interception CA certificate and an install page at /ca. */
        serveCa: z.boolean().default(false),
        /** `host:port` that /proxy.pac (and /wpad.dat) tells devices to use; default: the host they reached the admin listener by, with the forward listener's port. */
        pacProxy: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port').optional(),
      })
      .nullable()
      .prefault({}),
    clients: z.array(cidr).default(DEFAULT_CLIENTS),
    upstream: z
      .strictObject({
        hosts: z.record(hostName, z.string().regex(/^[^\s]+$/)).default({}),
        allowPrivate: z.boolean().default(false),
        ports: z.array(port).default([443, 80]),
        connectTimeout: duration.default(10_000),
        dnsCacheTtl: duration.default(60_000),
        /** DNS servers for upstream names (`addr` or `addr:port`); absent = the system's (/etc/resolv.conf). */
        dnsServers: z.array(z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+)(:\d{1,5})?$/, 'expected addr or addr:port')).min(1).optional(),
      })
      .prefault({}),
    tls: z
      .strictObject({
        /** What to do with a ClientHello that names no server. */
        noSni: z.enum(['block', 'allow']).default('block'),
        /** What to do with bytes that are not TLS on the TLS listener. */
        notTls: z.enum(['block', 'allow']).default('block'),
        /** Encrypted ClientHello: decide on the outer (public) name, or block. */
        ech: z.enum(['block', 'allow-outer']).default('allow-outer'),
        /** Block when a CONNECT authority and the SNI disagree (domain fronting). */
        blockFronting: z.boolean().default(false),
        clientHelloTimeout: duration.default(10_000),
        clientHelloMaxBytes: z.number().int().min(512).max(65536).default(16384),
      })
      .prefault({}),
    limits: z
      .strictObject({
        maxConnections: z.number().int().positive().default(4096),
        maxConnectionsPerClient: z.number().int().positive().default(256),
        /** IPv6 clients are counted per prefix of this length: one device picks any address in its /64. */
        clientIpv6Prefix: z.number().int().min(16).max(128).default(64),
        maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).default(16384),
        headersTimeout: duration.default(10_000),
        idleTimeout: duration.default(120_000),
        drainTimeout: duration.default(10_000),
      })
      .prefault({}),
    /** The DNS listener's answers, cache and limits (docs/dns.md); used when listeners.dns is set. */
    dns: z
      .strictObject({
        /** A blocked name: `null` = A 0.0.0.0 / AAAA :: (or blockAddress), NODATA for other types; `nxdomain`. */
        blocked: z.enum(['null', 'nxdomain']).default('null'),
        /** Addresses a blocked name resolves to instead of 0.0.0.0 / :: (the transparent http listener's, for the block page). */
        blockAddress: z
          .strictObject({
            ipv4: z.ipv4().optional(),
            ipv6: z.ipv6().optional(),
          })
          .prefault({}),
        /** TTL of local answers (blocked names, bypass signals, the SafeSearch CNAME). */
        blockTtl: duration.default(60_000),
        /** Longest time an upstream answer is cached, whatever its TTL. */
        maxTtl: duration.default(3_600_000),
        cacheEntries: z.number().int().min(0).max(10_000_000).default(50_000),
        cacheBytes: z.number().int().min(0).default(32 * 1024 * 1024),
        /** HTTPS/SVCB answers: `strip-ech` removes the ech parameter; `empty` answers every HTTPS question with NODATA. */
        https: z.enum(['strip-ech', 'empty']).default('strip-ech'),
        /** Per client (IPv4 address, IPv6 limits.clientIpv6Prefix): a NATed venue is one client, so the default is generous. */
        rateLimit: z
          .strictObject({
            queriesPerSecond: z.number().min(0).default(500),
            burst: z.number().int().min(1).default(2000),
          })
          .prefault({}),
        tcpIdleTimeout: duration.default(10_000),
        maxTcpConnections: z.number().int().positive().default(256),
        /** Queries in flight on one TCP connection (pipelining, RFC 7766 §6.2.1.1). */
        maxTcpInFlight: z.number().int().positive().max(256).default(16),
        /** How long one upstream try waits; then the next server is asked. */
        timeout: duration.default(2_000),
        tries: z.number().int().min(1).max(10).default(3),
        /** Upstream questions in flight at most (beyond: SERVFAIL at once). */
        maxPending: z.number().int().positive().default(4096),
      })
      .prefault({}),
    lists: z.array(listSchema).default([]),
    /**
     * A compiled, signed policy bundle (`safespot compile --sign`) as the appliance's whole policy:
     * URL and image lists, allowlist and profiles all come from it (appliance/lists/bundle-source.ts,
     * docs/lists-fleet.md). With `bundle`, `lists`, `allow` and `profiles` must be empty.
     */
    bundle: z
      .strictObject({
        /** A file path, or an https:// URL; the signature is read from `${source}.sig`. */
        source: z.string().min(1),
        /** Refresh interval (URL sources default to 6h; file sources refresh only when set). */
        refresh: duration.optional(),
        /** Ed25519 public key (PEM file path) for the detached signature at `${source}.sig`. */
        publicKey: z.string().min(1).optional(),
        /** The name the signed statement must carry (`safespot compile --sign`); default `bundle`. */
        signedName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/, 'signed names are 1-128 letters, digits and . _ : / -').optional(),
        /** Also accept a bare signature over the bytes (names no bundle or version). */
        bareSignature: z.boolean().default(false),
        /** Expected SHA-256 (hex) of the bundle bytes (pins one version). */
        sha256: z.string().regex(/^[0-9a-fA-F]{64}$/).optional(),
        /** HTTP request headers; values `env:NAME` or `file:PATH` are read at start and never printed. */
        headers: z.record(z.string(), z.string()).optional(),
        /** Largest bundle accepted, in bytes. */
        maxBytes: z.number().int().positive().default(256 * 1024 * 1024),
        /** Refuse a bundle whose total entries shrank by more than this percentage. */
        maxShrinkPercent: z.number().min(0).max(100).default(50),
      })
      .optional(),
    /** How list sources are fetched (appliance/lists/source.ts) and what start-up does without them (appliance/lists/refresh.ts). */
    sources: z
      .strictObject({
        /** Whole-request deadline for one fetch: headers AND body (a trickling origin is cut off). */
        timeout: duration.default(30_000),
        /** Extra attempts after a failed fetch (network errors, 5xx, 408, 429, timeouts), with exponential back-off and jitter. */
        retries: z.number().int().min(0).max(10).default(3),
        /** A list with no last-good copy at start: 'wait' fetches it before serving; 'fail-closed' serves at once and reports it missing. */
        startup: z.enum(['wait', 'fail-closed']).default('wait'),
        /** Extra CA certificates (PEM file) trusted for https:// sources, beside the system roots (private or test origins). */
        ca: z.string().min(1).optional(),
      })
      .prefault({}),
    allow: z.array(z.string()).default([]),
    profiles: z.array(profileSchema).default([]),
    safeSearch: z.boolean().default(false),
    intercept: interceptSchema
      .extend({
        /** Extra CA certificates (PEM file) trusted for intercepted upstream servers, beside the system roots (private PKIs, tests). Top level only. */
        upstreamCa: z.string().min(1).optional(),
        /** New leaves one client may have minted per minute (names not cached); past it the connection is refused, counted mint_budget. Top level only. */
        mintsPerMinute: z.number().int().positive().default(120),
      })
      .prefault({}),
    requests: z
      .strictObject({
        /** A path origins may read more than one way (escaped ? # / \ NUL or dot, dot segments beside escapes): refuse (400) or decide every reading. */
        ambiguousPaths: z.enum(['refuse', 'decide']).default('refuse'),
      })
      .prefault({}),
    images: z
      .strictObject({
        enabled: z.boolean().default(true),
        maxBytes: z.number().int().positive().default(8 * 1024 * 1024),
        timeout: duration.default(5_000),
        /** What happens to an image that could not be scanned (too large, timed out, undecodable). */
        unscanned: z.enum(['pass', 'block']).default('pass'),
        /** Bytes all images held at once may take, per worker; past it, `over_budget` and `unscanned`. */
        maxHeldBytes: z.number().int().positive().default(64 * 1024 * 1024),
        pdqDistance: z.number().int().min(0).max(64).default(31),
        pdqMinQuality: z.number().int().min(0).max(100).default(50),
        dihedral: z.boolean().default(true),
      })
      .prefault({}),
    journal: z
      .strictObject({
        path: z.string().default('safespot-journal.db'),
        retentionDays: z.number().int().positive().default(400),
        /** Record the full URL of blocked requests (off by default: guest privacy). */
        recordUrls: z.boolean().default(false),
        /** Record the client address of blocked requests (off by default: guest privacy). */
        recordClients: z.boolean().default(false),
        /**
         * Blocks and image matches per minute and key (category, list, listener, protocol, action,
         * client when known) that get a row of their own; the rest of the minute are one row with a
         * count (figures stay exact; no URL). 0 = counts only. audit/journal-budget.ts.
         */
        eventsPerMinute: z.number().int().min(0).max(1_000_000).default(600),
        /** Size budget of the journal (pages in use + WAL), bytes; past it, only per-minute counts are kept. */
        maxBytes: z.number().int().min(1_048_576).default(512 * 1024 * 1024),
        /** Warn (log, and safespot_journal_alert_bytes for the alert rule) at this percentage of maxBytes. */
        alertPercent: z.number().int().min(1).max(100).default(80),
        /** How often a signed checkpoint of the journal's tree is written while running (audit/journal-tree.ts). */
        checkpointInterval: duration.default(900_000),
      })
      .prefault({}),
    /**
     * The venue: `id` names the appliance's signing key (`safespot/<id>`, fixed when the key is made)
     * and its checkpoints; `name` is printed on reports. Both appear in safespot_appliance_info.
     */
    site: z
      .strictObject({
        id: z.string().regex(CANARY_ID, 'a site id is 1 to 32 of a-z 0-9 _ - starting with a letter or digit').default('appliance'),
        name: z.string().max(200).default(''),
      })
      .prefault({}),
    state: z.strictObject({ dir: z.string().default('safespot-state') }).prefault({}),
    ca: z.strictObject({ dir: z.string().default('safespot-ca') }).prefault({}),
    blockPage: z
      .strictObject({
        contact: z.string().max(200).default(''),
        languages: z.array(z.string().regex(/^[a-z]{2,3}$/)).default(['en', 'sq']),
        /** Text shown for the csam category; the default is the hotline-style splash text. */
        csamText: z.string().max(2000).optional(),
      })
      .prefault({}),
    selftest: z
      .strictObject({
        interval: duration.default(900_000),
        canaries: z
          .array(
            z.strictObject({
              /**
               * The canary's name in metrics and the journal (`safespot_selftest_canary_success{canary}`),
               * a bounded word and never its URL; default `<category>-<position>` (1-based).
               */
              id: z.string().regex(CANARY_ID, 'a canary id is 1 to 32 of a-z 0-9 _ - starting with a letter or digit (never the URL)').optional(),
              category: z.string(),
              url: z.string().optional(),
              host: z.string().optional(),
            }),
          )
          .transform((cs) => cs.map((c, i) => ({ ...c, id: c.id ?? (CANARY_ID.test(`${c.category}-${i + 1}`) ? `${c.category}-${i + 1}` : `canary-${i + 1}`) })))
          .default([]),
      })
      .prefault({}),
    workers: z.union([z.number().int().min(1).max(64), z.literal('auto')]).default(1),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.bundle) {
      // The bundle is the whole policy: local lists, allow entries or profiles would be silently ignored.
      if (cfg.lists.length) ctx.addIssue({ code: 'custom', path: ['lists'], message: 'must be empty when `bundle` is set (the lists come from the bundle)' });
      if (cfg.allow.length) ctx.addIssue({ code: 'custom', path: ['allow'], message: 'must be empty when `bundle` is set (the allowlist comes from the bundle)' });
      if (cfg.profiles.length) ctx.addIssue({ code: 'custom', path: ['profiles'], message: 'must be empty when `bundle` is set (the profiles come from the bundle)' });
    }
    const ids = new Set<string>();
    cfg.lists.forEach((l, i) => {
      if (isBuiltinSource(l.source)) {
        const kind = builtinKind(l.source);
        if (kind === null) ctx.addIssue({ code: 'custom', path: ['lists', i, 'source'], message: `unknown builtin source "${l.source}" (known: ${BUILTIN_SOURCES.join(', ')})` });
        else if (kind !== l.kind) ctx.addIssue({ code: 'custom', path: ['lists', i, 'kind'], message: `${l.source} is a ${kind} list` });
      }
      if (ids.has(l.id)) ctx.addIssue({ code: 'custom', path: ['lists', i, 'id'], message: `duplicate list id "${l.id}"` });
      ids.add(l.id);
    });
    const canaryIds = new Set<string>();
    cfg.selftest.canaries.forEach((c, i) => {
      if (canaryIds.has(c.id)) ctx.addIssue({ code: 'custom', path: ['selftest', 'canaries', i, 'id'], message: `canary id "${c.id}" is used twice` });
      canaryIds.add(c.id);
    });
    cfg.profiles.forEach((p, i) => {
      (p.lists ?? []).forEach((id, j) => {
        if (!ids.has(id)) ctx.addIssue({ code: 'custom', path: ['profiles', i, 'lists', j], message: `no list has id "${id}"` });
      });
    });
  });

/** Durations come out as milliseconds. */
export type Config = z.output<typeof configSchema>;
export type ListConfig = Config['lists'][number];
export type ProfileConfig = Config['profiles'][number];

/** Every problem of a parse, one line each: `path: message`. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
    return `${path}: ${issue.message}`;
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

const isUrl = (s: string): boolean => /^https?:\/\//i.test(s);

/** Resolve paths relative to `baseDir` (the config file's folder). */
function resolvePaths(cfg: Config, baseDir: string): Config {
  const abs = (p: string): string => (isAbsolute(p) || isUrl(p) || isBuiltinSource(p) ? p : resolve(baseDir, p));
  return {
    ...cfg,
    lists: cfg.lists.map((l) => ({
      ...l,
      source: abs(l.source),
      publicKey: l.publicKey && abs(l.publicKey),
      // `file:PATH` header values are paths like any other.
      headers: l.headers && Object.fromEntries(Object.entries(l.headers).map(([k, v]) => [k, v.startsWith('file:') ? `file:${abs(v.slice(5))}` : v])),
    })),
    bundle: cfg.bundle && {
      ...cfg.bundle,
      source: abs(cfg.bundle.source),
      publicKey: cfg.bundle.publicKey && abs(cfg.bundle.publicKey),
      headers: cfg.bundle.headers && Object.fromEntries(Object.entries(cfg.bundle.headers).map(([k, v]) => [k, v.startsWith('file:') ? `file:${abs(v.slice(5))}` : v])),
    },
    sources: { ...cfg.sources, ca: cfg.sources.ca && abs(cfg.sources.ca) },
    intercept: { ...cfg.intercept, upstreamCa: cfg.intercept.upstreamCa && abs(cfg.intercept.upstreamCa) },
    admin: cfg.admin && { ...cfg.admin, tokenFile: cfg.admin.tokenFile && abs(cfg.admin.tokenFile) },
    journal: { ...cfg.journal, path: abs(cfg.journal.path) },
    state: { dir: abs(cfg.state.dir) },
    ca: { dir: abs(cfg.ca.dir) },
  };
}

/** Validate a parsed YAML document; throws ERR_CONFIG_INVALID listing every problem. */
export function validateConfig(doc: unknown, baseDir: string, origin = 'config'): Readonly<Config> {
  const result = configSchema.safeParse(doc ?? {});
  if (!result.success) {
    const details = formatIssues(result.error);
    throw new SafespotError('ERR_CONFIG_INVALID', `${origin}: ${details.length} problem(s)`, { details });
  }
  return deepFreeze(resolvePaths(result.data, baseDir));
}

/** Read, parse and validate a YAML config file; `onBytes` sees the exact bytes read (a reload journals their SHA-256). */
export function loadConfigFile(path: string, onBytes?: (bytes: Buffer) => void): Readonly<Config> {
  let text: string;
  try {
    const bytes = readFileSync(path);
    onBytes?.(bytes);
    text = bytes.toString('utf8');
  } catch (cause) {
    throw new SafespotError('ERR_CONFIG_READ', `cannot read config file ${path}: ${(cause as Error).message}`, { cause });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (cause) {
    throw new SafespotError('ERR_CONFIG_READ', `${path} is not valid YAML: ${(cause as Error).message}`, { cause });
  }
  return validateConfig(doc, dirname(resolve(path)), path);
}
