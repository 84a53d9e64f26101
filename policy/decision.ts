/**
 * The plain values that cross the decision hooks: what is being decided (a Subject), and the
 * verdict (a Decision). Protocol code in proxy/ builds a Subject, calls a hook, and acts on the
 * Decision; it never looks inside the policy.
 */

/** What a verdict is about. */
export type Subject =
  /** A host name or IP literal alone: a CONNECT authority, an SNI, a Host header without a path. */
  | { readonly kind: 'host'; readonly host: string }
  /** A full absolute URL (`http://host/path?query`). */
  | { readonly kind: 'url'; readonly url: string };

/** allow: pass. block: refuse. monitor: a monitor-mode list would have blocked; passed and recorded. */
export type Action = 'allow' | 'block' | 'monitor';

/** The kind of rule that produced a verdict. */
export type RuleKind =
  | 'domain' // a `domains` list entry (host and its subdomains)
  | 'url' // a `urls` list entry (page level)
  | 'hashed-url' // a `hashed-urls` list entry (SHA-256 of a Safe Browsing expression)
  | 'md5'
  | 'sha1'
  | 'sha256'
  | 'pdq'
  | 'allowlist' // an allow entry overrode an overridable list
  | 'no-policy' // fail closed: nothing valid is loaded
  | 'none'; // nothing matched

export interface Decision {
  readonly action: Action;
  /** Category of the list that matched (`csam`, `adult`, `malware`, `bypass`, an operator word), or null. */
  readonly category: string | null;
  /** Id of the list that matched, or null. */
  readonly list: string | null;
  readonly rule: RuleKind;
  /** A human explanation. Never holds clear text of a hashed list. */
  readonly reason: string;
}

export const ALLOW_NOTHING_MATCHED: Decision = Object.freeze({
  action: 'allow',
  category: null,
  list: null,
  rule: 'none',
  reason: 'no list matched',
});
