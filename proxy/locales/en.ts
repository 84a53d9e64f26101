/** English block-page strings. `{contact}` is replaced by the venue contact (escaped). */
import type { BlockStrings } from '../block-page.js';

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
};
