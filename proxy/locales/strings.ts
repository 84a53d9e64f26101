/** What every language file under locales/ holds: the strings of the pages a guest may see. */

/** The kinds of certificate failure the guest is told about; each locale words every one. */
export type CertProblem =
  | 'expired'
  | 'notYetValid'
  | 'wrongName'
  | 'selfSigned'
  | 'untrustedRoot'
  | 'untrustedIssuer'
  | 'untrusted'
  | 'rejected'
  | 'revoked'
  | 'badSignature'
  | 'invalidAuthority'
  | 'wrongPurpose'
  | 'chainTooLong'
  | 'malformed';

/** Strings of the explanatory page in one language (the `upstreamTls` part of a locale file). */
export interface UpstreamTlsStrings {
  /** Heading and title when the certificate failed verification. */
  readonly certHeading: string;
  /** Heading and title when the handshake failed for another reason. */
  readonly tlsHeading: string;
  /** With `{problem}`, one of `problems`. This and the next two end without a full stop: the page adds the OpenSSL code, then the stop. */
  readonly certFailed: string;
  /** A certificate failure of a kind not in the table. */
  readonly certFailedUnknown: string;
  readonly tlsFailed: string;
  readonly problems: Readonly<Record<CertProblem, string>>;
  /** Why the page was not loaded and what the guest can do. */
  readonly explanation: string;
}

/** Strings of one language (the block page's, and the other pages a guest may see). */
export interface BlockStrings {
  /** BCP 47 primary tag, for `lang` and Content-Language. */
  readonly lang: string;
  readonly title: string;
  readonly heading: string;
  readonly blocked: string;
  readonly categoryLabel: string;
  /** Names of the well-known categories; an operator's own category word is shown as it is. */
  readonly categories: Readonly<Record<string, string>>;
  readonly otherCategory: string;
  readonly referenceLabel: string;
  /** With `{contact}`. */
  readonly contact: string;
  readonly noContact: string;
  /** Default hotline-style text for the csam category. */
  readonly csamText: string;
  readonly noPolicyHeading: string;
  readonly noPolicy: string;
  /** The explanatory 502 page for an intercepted upstream that fails TLS (proxy/upstream-tls.ts). */
  readonly upstreamTls: UpstreamTlsStrings;
}
