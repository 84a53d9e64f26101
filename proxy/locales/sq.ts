/** Albanian (shqip) block-page strings. `{contact}` is replaced by the venue contact (escaped). */
import type { BlockStrings } from '../block-page.js';

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
};
