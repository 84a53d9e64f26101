/** Albanian (shqip) strings of the block page and the bad-certificate page. `{contact}` is replaced by the venue contact (escaped). */
import type { BlockStrings } from './strings.js';

export const sq: BlockStrings = {
  lang: 'sq',
  title: 'Faqja u bllokua',
  heading: 'Kjo faqe është e bllokuar',
  blocked: 'Qasja në këtë faqe u bllokua nga filtri i rrjetit WiFi të këtij lokali.',
  categoryLabel: 'Kategoria',
  categories: {
    csam: 'Material i abuzimit seksual të fëmijëve',
    adult: 'Përmbajtje për të rritur',
    malware: 'Program keqdashës ose mashtrim',
    bypass: 'Anashkalim i filtrit (proxy ose VPN)',
  },
  otherCategory: 'Përmbajtje e kufizuar',
  referenceLabel: 'Kodi i referencës',
  contact: 'Nëse mendoni se kjo është gabim, kontaktoni {contact} dhe përmendni kodin e referencës.',
  noContact: 'Nëse mendoni se kjo është gabim, njoftoni stafin e lokalit dhe përmendni kodin e referencës.',
  csamText:
    'Qasja u refuzua sepse kjo faqe mund të përmbajë imazhe të abuzimit seksual të fëmijëve, siç janë identifikuar nga lista e një linje raportimi (hotline). ' +
    'Nëse mendoni se faqja u bllokua gabimisht, raportojeni te kontakti i lokalit më poshtë duke përmendur kodin e referencës; ' +
    'gabimi do t’i përcillet linjës së raportimit që mban listën.',
  noPolicyHeading: 'Filtrimi nuk është gati',
  noPolicy: 'Filtri i WiFi nuk ka ende një politikë të vlefshme, prandaj asnjë faqe nuk mund të hapet. Ju lutemi provoni përsëri pas pak.',
  upstreamTls: {
    certHeading: 'Kjo faqe interneti nuk mundi të vërtetojë identitetin e saj',
    tlsHeading: 'Lidhja e sigurt me këtë faqe interneti dështoi',
    certFailed: 'Serveri nuk mundi të vërtetojë identitetin e tij: {problem}',
    certFailedUnknown: 'Serveri nuk mundi të vërtetojë identitetin e tij: certifikata e tij nuk e kaloi kontrollin',
    tlsFailed: 'Lidhja e sigurt me serverin dështoi',
    problems: {
      expired: 'certifikata e tij ka skaduar',
      notYetValid: 'certifikata e tij nuk është ende e vlefshme',
      wrongName: 'certifikata e tij është lëshuar për një emër tjetër',
      selfSigned: 'certifikata e tij është e vetënënshkruar, jo e lëshuar nga një autoritet i besuar',
      untrustedRoot: 'zinxhiri i certifikatës së tij përfundon te një autoritet që nuk është i besuar',
      untrustedIssuer: 'certifikata e tij nuk është lëshuar nga një autoritet i besuar',
      untrusted: 'certifikata e tij nuk është e besuar',
      rejected: 'certifikata e tij u refuzua',
      revoked: 'certifikata e tij është shfuqizuar',
      badSignature: 'nënshkrimi i certifikatës së tij është i pavlefshëm',
      invalidAuthority: 'zinxhiri i certifikatës së tij përmban një autoritet të pavlefshëm',
      wrongPurpose: 'certifikata e tij nuk është e destinuar për një server uebi',
      chainTooLong: 'zinxhiri i certifikatës së tij është tepër i gjatë',
      malformed: 'certifikata e tij nuk është e formuar si duhet',
    },
    explanation:
      'Ky rrjet kontrollon në emrin tuaj certifikatat e faqeve të sigurta. Faqja nuk u ngarkua, ' +
      'sepse mund të jetë një faqe e rreme që paraqitet si e vërteta. Nëse problemi vazhdon, kontaktoni pronarin e faqes.',
  },
};
