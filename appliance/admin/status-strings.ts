/**
 * Strings of the venue's status page (status-page.ts), English and Albanian. The page is for venue
 * staff, not guests, so its words live here beside it rather than in proxy/locales/ (the guest
 * pages'); the category names are the guest pages' own (proxy/locales/), so both say the same.
 * `{age}`, `{n}` and `{when}` are replaced by the page (escaped).
 */

export interface StatusStrings {
  readonly lang: 'en' | 'sq';
  /** The language's own name, for the switch link. */
  readonly name: string;
  readonly title: string;
  readonly filtering: string;
  readonly active: string;
  readonly inactive: string;
  readonly activeNote: string;
  readonly inactiveNote: string;
  readonly unknownNote: string;
  readonly policyVersion: string;
  readonly lists: string;
  readonly list: string;
  readonly entries: string;
  readonly loaded: string;
  readonly state: string;
  readonly fresh: string;
  readonly stale: string;
  readonly never: string;
  readonly noLists: string;
  readonly selftest: string;
  readonly canary: string;
  readonly category: string;
  readonly result: string;
  readonly pass: string;
  readonly fail: string;
  /** With `{age}`. */
  readonly lastRun: string;
  readonly noCanaries: string;
  readonly blocked: string;
  readonly blockedNote: string;
  readonly today: string;
  readonly month: string;
  readonly total: string;
  readonly nothingBlocked: string;
  readonly images: string;
  readonly chartLabel: string;
  readonly journalUnavailable: string;
  readonly appliance: string;
  readonly site: string;
  readonly fingerprint: string;
  readonly noFingerprint: string;
  /** With `{when}`. */
  readonly generated: string;
  readonly privacy: string;
  /** With `{age}`. */
  readonly ago: string;
  /** Units of an age: seconds, minutes, hours, days. */
  readonly units: readonly [string, string, string, string];
  readonly noCategory: string;
  readonly otherCategory: string;
}

export const STATUS_EN: StatusStrings = {
  lang: 'en',
  name: 'English',
  title: 'WiFi filter status',
  filtering: 'Filtering',
  active: 'Active',
  inactive: 'Not active',
  activeNote: 'A valid policy is loaded and enforced.',
  inactiveNote: 'No valid policy is loaded: guests cannot open any page (the filter fails closed). Tell your technical contact.',
  unknownNote: 'The filter did not report its state.',
  policyVersion: 'Policy version',
  lists: 'Lists',
  list: 'List',
  entries: 'Entries',
  loaded: 'Last loaded',
  state: 'State',
  fresh: 'Up to date',
  stale: 'Out of date',
  never: 'Never loaded',
  noLists: 'No list is configured.',
  selftest: 'Self-test',
  canary: 'Test',
  category: 'Category',
  result: 'Result',
  pass: 'Blocked (pass)',
  fail: 'Not blocked (fail)',
  lastRun: 'Last run {age}.',
  noCanaries: 'No self-test is configured.',
  blocked: 'Blocked requests',
  blockedNote: 'Days are UTC days. Counts come from the audit journal.',
  today: 'Today',
  month: 'This month',
  total: 'Total',
  nothingBlocked: 'Nothing was blocked this month.',
  images: 'Images blocked',
  chartLabel: 'Blocked requests per day this month, by category',
  journalUnavailable: 'The audit journal could not be read just now.',
  appliance: 'Appliance',
  site: 'Site',
  fingerprint: 'Signing key fingerprint',
  noFingerprint: 'No signing key yet.',
  generated: 'Generated {when}.',
  privacy: 'This page shows no guest data: no addresses, no devices, no sites visited.',
  ago: '{age} ago',
  units: ['s', 'min', 'h', 'd'],
  noCategory: 'No category',
  otherCategory: 'Other',
};

export const STATUS_SQ: StatusStrings = {
  lang: 'sq',
  name: 'Shqip',
  title: 'Gjendja e filtrit të WiFi',
  filtering: 'Filtrimi',
  active: 'Aktiv',
  inactive: 'Jo aktiv',
  activeNote: 'Një politikë e vlefshme është e ngarkuar dhe zbatohet.',
  inactiveNote:
    'Nuk ka politikë të vlefshme të ngarkuar: vizitorët nuk mund të hapin asnjë faqe (filtri mbyllet për siguri). Njoftoni kontaktin tuaj teknik.',
  unknownNote: 'Filtri nuk e raportoi gjendjen e tij.',
  policyVersion: 'Versioni i politikës',
  lists: 'Listat',
  list: 'Lista',
  entries: 'Hyrje',
  loaded: 'Ngarkuar së fundi',
  state: 'Gjendja',
  fresh: 'E përditësuar',
  stale: 'E vjetëruar',
  never: 'Nuk është ngarkuar kurrë',
  noLists: 'Nuk është konfiguruar asnjë listë.',
  selftest: 'Vetëtestimi',
  canary: 'Testi',
  category: 'Kategoria',
  result: 'Rezultati',
  pass: 'U bllokua (kaloi)',
  fail: 'Nuk u bllokua (dështoi)',
  lastRun: 'Ekzekutuar së fundi {age}.',
  noCanaries: 'Nuk është konfiguruar asnjë vetëtestim.',
  blocked: 'Kërkesa të bllokuara',
  blockedNote: 'Ditët janë ditë UTC. Numrat vijnë nga regjistri i auditimit.',
  today: 'Sot',
  month: 'Këtë muaj',
  total: 'Gjithsej',
  nothingBlocked: 'Asgjë nuk u bllokua këtë muaj.',
  images: 'Imazhe të bllokuara',
  chartLabel: 'Kërkesa të bllokuara në ditë këtë muaj, sipas kategorisë',
  journalUnavailable: 'Regjistri i auditimit nuk mund të lexohej tani.',
  appliance: 'Pajisja',
  site: 'Vendndodhja',
  fingerprint: 'Gjurma e çelësit të nënshkrimit',
  noFingerprint: 'Ende nuk ka çelës nënshkrimi.',
  generated: 'Krijuar më {when}.',
  privacy: 'Kjo faqe nuk tregon asnjë të dhënë të vizitorëve: asnjë adresë, asnjë pajisje, asnjë faqe të vizituar.',
  ago: '{age} më parë',
  units: ['sek', 'min', 'orë', 'ditë'],
  noCategory: 'Pa kategori',
  otherCategory: 'Tjetër',
};

export const STATUS_LOCALES: Readonly<Record<'en' | 'sq', StatusStrings>> = { en: STATUS_EN, sq: STATUS_SQ };
