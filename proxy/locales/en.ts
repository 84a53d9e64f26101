/** English strings of the block page and the bad-certificate page. `{contact}` is replaced by the venue contact (escaped). */
import type { BlockStrings } from './strings.js';

export const en: BlockStrings = {
  lang: 'en',
  title: 'Page blocked',
  heading: 'This page is blocked',
  blocked: "Access to this page was blocked by this venue's WiFi filter.",
  categoryLabel: 'Category',
  categories: {
    csam: 'Child sexual abuse material',
    adult: 'Adult content',
    malware: 'Malware or phishing',
    bypass: 'Filter bypass (proxy or VPN)',
  },
  otherCategory: 'Restricted content',
  referenceLabel: 'Reference',
  contact: 'If you think this is a mistake, contact {contact} and quote the reference.',
  noContact: 'If you think this is a mistake, tell the venue staff and quote the reference.',
  csamText:
    'Access was denied because this page may contain images of child sexual abuse, as identified by a hotline list. ' +
    'If you think this page was blocked in error, report it to the venue contact below, quoting the reference; ' +
    'the error will be passed on to the hotline that maintains the list.',
  noPolicyHeading: 'Filtering is not ready',
  noPolicy: 'The WiFi filter has no valid policy loaded yet, so no page can be opened. Please try again in a moment.',
  upstreamTls: {
    certHeading: 'This site could not prove its identity',
    tlsHeading: 'The secure connection to this site failed',
    certFailed: 'The server could not prove its identity: {problem}',
    certFailedUnknown: 'The server could not prove its identity: its certificate failed the check',
    tlsFailed: 'The secure connection to the server failed',
    problems: {
      expired: 'its certificate has expired',
      notYetValid: 'its certificate is not valid yet',
      wrongName: 'its certificate was issued for a different name',
      selfSigned: 'its certificate is self-signed, not issued by a trusted authority',
      untrustedRoot: 'its certificate chain ends in an authority that is not trusted',
      untrustedIssuer: 'its certificate is not issued by a trusted authority',
      untrusted: 'its certificate is not trusted',
      rejected: 'its certificate was rejected',
      revoked: 'its certificate has been revoked',
      badSignature: 'its certificate signature is invalid',
      invalidAuthority: 'its certificate chain contains an invalid authority',
      wrongPurpose: 'its certificate is not meant for a web server',
      chainTooLong: 'its certificate chain is too long',
      malformed: 'its certificate is malformed',
    },
    explanation:
      'This network checks the certificates of secure sites on your behalf. The page was not loaded, ' +
      "because it could be an impostor. If the problem persists, contact the site's owner.",
  },
};
