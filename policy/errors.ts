/**
 * The one error base class of safespot, and the one table from a stable error code to what each
 * edge does with it: the HTTP status a guest sees, the TLS alert a refused handshake gets, the exit
 * status of a command. Every module throws `SafespotError` with a code from this table; tests keep
 * the table and `docs/errors.md` in sync.
 *
 * This file is the single leaf that every floor may import (it imports nothing): policy/, audit/,
 * certs/, proxy/ and appliance/ all share it.
 */

/** TLS alert descriptions we send (RFC 8446 §6.2). */
export const TlsAlert = {
  handshake_failure: 40,
  access_denied: 49,
  decode_error: 50,
  internal_error: 80,
  unrecognized_name: 112,
} as const;
export type TlsAlertName = keyof typeof TlsAlert;

export interface ErrorSpec {
  /** One line for docs/errors.md. */
  readonly summary: string;
  /** Status an HTTP client gets when this error ends its request. */
  readonly http: number;
  /** Alert a TLS client gets when this error ends its handshake. */
  readonly tls: TlsAlertName;
  /** Exit status of a command that ends with this error (2 = bad usage or config). */
  readonly exit: 0 | 1 | 2;
}

export const ERRORS = {
  ERR_USAGE: { summary: 'A command was called with unknown or missing arguments.', http: 400, tls: 'internal_error', exit: 2 },
  ERR_CONFIG_INVALID: { summary: 'The configuration file failed validation; every problem is listed.', http: 500, tls: 'internal_error', exit: 2 },
  ERR_CONFIG_READ: { summary: 'The configuration file could not be read or is not YAML.', http: 500, tls: 'internal_error', exit: 2 },
  ERR_LIST_INVALID: { summary: 'A list could not be parsed (too many malformed lines, wrong kind, or empty).', http: 500, tls: 'internal_error', exit: 1 },
  ERR_LIST_READ: { summary: 'A list source could not be read.', http: 500, tls: 'internal_error', exit: 1 },
  ERR_BUNDLE_CORRUPT: { summary: 'A policy bundle failed its checksum, is truncated, or has an unknown version.', http: 500, tls: 'internal_error', exit: 1 },
  ERR_NO_POLICY: { summary: 'No valid policy is loaded; the appliance fails closed.', http: 503, tls: 'internal_error', exit: 1 },
  ERR_CLIENT_FORBIDDEN: { summary: 'The client address is outside the configured client networks.', http: 403, tls: 'access_denied', exit: 1 },
  ERR_DESTINATION_FORBIDDEN: { summary: 'The destination is loopback, link-local, private, the appliance itself, or a port not allowed.', http: 403, tls: 'access_denied', exit: 1 },
  ERR_BLOCKED: { summary: 'The policy blocked the request.', http: 403, tls: 'access_denied', exit: 1 },
  ERR_CLIENT_HELLO_MALFORMED: { summary: 'The bytes at the start of a TLS connection are not a well-formed ClientHello.', http: 400, tls: 'decode_error', exit: 1 },
  ERR_CLIENT_HELLO_TIMEOUT: { summary: 'The client did not send a complete ClientHello in time.', http: 408, tls: 'handshake_failure', exit: 1 },
  ERR_NO_SNI: { summary: 'The ClientHello names no server, and the configuration refuses such connections.', http: 403, tls: 'unrecognized_name', exit: 1 },
  ERR_UPSTREAM: { summary: 'The upstream server could not be reached or failed.', http: 502, tls: 'internal_error', exit: 1 },
  ERR_UPSTREAM_TIMEOUT: { summary: 'The upstream server did not answer in time.', http: 504, tls: 'internal_error', exit: 1 },
  ERR_RESOLVE: { summary: 'The destination name could not be resolved.', http: 502, tls: 'unrecognized_name', exit: 1 },
  ERR_LIMIT: { summary: 'A connection or size limit was reached.', http: 503, tls: 'internal_error', exit: 1 },
  ERR_HEADERS_TOO_LARGE: { summary: 'The request head is larger than the configured limit.', http: 431, tls: 'internal_error', exit: 1 },
  ERR_REQUEST_TIMEOUT: { summary: 'The client was too slow sending its request.', http: 408, tls: 'internal_error', exit: 1 },
  ERR_BAD_REQUEST: { summary: 'The request is malformed or ambiguous (smuggling-shaped), or cannot be routed.', http: 400, tls: 'decode_error', exit: 1 },
  ERR_MISDIRECTED: { summary: 'A request names another host than the connection (tunnel or intercepted TLS) it came on.', http: 421, tls: 'unrecognized_name', exit: 1 },
  ERR_METHOD_NOT_ALLOWED: { summary: 'CONNECT where only the explicit proxy listener serves it (inside a tunnel, intercepted TLS, the transparent listener).', http: 405, tls: 'internal_error', exit: 1 },
  ERR_IMAGE_DECODE: { summary: 'An image could not be decoded for hashing.', http: 502, tls: 'internal_error', exit: 1 },
  ERR_CERT: { summary: 'A certificate or key could not be created, loaded or verified.', http: 502, tls: 'internal_error', exit: 1 },
  ERR_JOURNAL: { summary: 'The audit journal could not be opened or written.', http: 500, tls: 'internal_error', exit: 1 },
  ERR_UNAUTHORIZED: { summary: 'The admin endpoint needs a valid bearer token.', http: 401, tls: 'access_denied', exit: 1 },
  ERR_INTERNAL: { summary: 'An unexpected internal error.', http: 500, tls: 'internal_error', exit: 1 },
  ERR_LIST_INTEGRITY: { summary: 'A list source failed its integrity check (SHA-256 or Ed25519 signature); the last good version stays in use.', http: 500, tls: 'internal_error', exit: 1 },
  ERR_UPSTREAM_CERT: { summary: 'An intercepted upstream server presented a certificate that failed verification (expired, wrong name, unknown CA); it is never used.', http: 502, tls: 'internal_error', exit: 1 },
  ERR_PROMETHEUS: { summary: 'A Prometheus HTTP API (the city report\'s source) could not be queried, or answered something that is not a query result.', http: 502, tls: 'internal_error', exit: 1 },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The base error. `code` is stable; `message` is for humans and never holds clear list content. */
export class SafespotError extends Error {
  readonly code: ErrorCode;
  /** Extra lines (for example every problem of a config file). */
  readonly details: readonly string[];

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: readonly string[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SafespotError';
    this.code = code;
    this.details = options?.details ?? [];
  }

  get spec(): ErrorSpec {
    return ERRORS[this.code];
  }
}

/** Exhaustiveness guard for switches over closed unions. */
export function assertNever(value: never, what = 'value'): never {
  throw new SafespotError('ERR_INTERNAL', `unexpected ${what}: ${String(value)}`);
}
