/**
 * The words of the HTML period report (audit/report-html.ts) in each language it is printed in:
 * English and Albanian (shqip), as the venue's block page has them (proxy/locales/, which audit/
 * may not import: one typed object per language here too). Figures, ids, times and hashes are not
 * translated; the JSON and CSV forms are English only (they are read by programs).
 */

export const REPORT_LANGS = ['en', 'sq'] as const;
export type ReportLang = (typeof REPORT_LANGS)[number];

export interface ReportStrings {
  readonly lang: ReportLang;
  readonly title: string;
  readonly periodFrom: string;
  readonly periodTo: string;
  readonly measuredUntil: string;
  readonly generatedAt: string;
  readonly journal: string;
  readonly venue: string;
  readonly venueId: string;
  readonly generator: string;
  readonly verification: string;
  readonly fingerprint: string;
  readonly verifierKey: string;
  readonly checkpoint: string;
  /** With {size} and {time}. */
  readonly checkpointValue: string;
  readonly root: string;
  readonly verifyCommand: string;
  /** How to verify, with {keyfile} and {file}; text in backticks is printed as code, on one line. */
  readonly verifyHow: string;
  readonly unsigned: string;
  readonly policies: string;
  readonly policyVersion: string;
  readonly policySince: string;
  readonly policyHow: string;
  readonly policyAtStart: string;
  readonly filteringActive: string;
  readonly fraction: string;
  readonly active: string;
  readonly inactive: string;
  readonly down: string;
  readonly filteringNote: string;
  readonly gapHead: readonly [string, string, string, string];
  readonly noGaps: string;
  readonly states: { readonly inactive: string; readonly down: string };
  readonly blockedRequests: string;
  readonly blockedImages: string;
  readonly category: string;
  readonly matchType: string;
  readonly requests: string;
  readonly images: string;
  readonly blocksPerDay: string;
  readonly monitored: string;
  readonly lists: string;
  readonly listsNote: string;
  readonly listHead: readonly [string, string, string, string, string, string, string, string];
  readonly never: string;
  /** The row of list events that name no list (report.ts NO_LIST). */
  readonly allLists: string;
  readonly historyHead: readonly [string, string, string, string];
  /** With {n}. */
  readonly moreHistory: string;
  readonly keeping: string;
  readonly keptAggregated: string;
  readonly aggregateRows: string;
  readonly reason: string;
  readonly lostEvents: string;
  readonly keepingNote: string;
  /** With {lost}. */
  readonly lostNote: string;
  readonly noLoss: string;
  /** With {passed} and {failed}. */
  readonly selftests: string;
  readonly selftestHead: readonly [string, string, string, string];
  readonly failureHead: readonly [string, string, string];
  readonly noFailures: string;
  readonly none: string;
  readonly pass: string;
  readonly fail: string;
  /** With {result} and {time}. */
  readonly lastResult: string;
}

export const en: ReportStrings = {
  lang: 'en',
  title: 'safespot audit report',
  periodFrom: 'Period from',
  periodTo: 'Period to (exclusive)',
  measuredUntil: 'Measured until',
  generatedAt: 'Generated at',
  journal: 'Journal',
  venue: 'Venue',
  venueId: 'Site id',
  generator: 'Made by',
  verification: 'Verification',
  fingerprint: 'Fingerprint of the appliance key',
  verifierKey: 'Appliance key (verifier key)',
  checkpoint: 'Covering checkpoint',
  checkpointValue: '{size} journal rows, signed {time}',
  root: 'Tree root (SHA-256, base64)',
  verifyCommand: 'Command to verify',
  verifyHow:
    'This report is signed by the appliance. With the appliance key saved as `{keyfile}` (from `safespot audit key`; compare its fingerprint with the one above) and the signature file `{file}.sig` beside this file, the command below exits 0 when the report is unchanged; add `--journal FILE` to check every figure against the journal.',
  unsigned: 'This report is not signed: it names no appliance key and cannot be verified.',
  policies: 'Policy versions in force',
  policyVersion: 'version',
  policySince: 'in force since',
  policyHow: 'loaded by',
  policyAtStart: 'in force at the start of the period',
  filteringActive: 'Filtering active',
  fraction: 'Fraction of the period with filtering active',
  active: 'Active',
  inactive: 'Running without an enforced policy',
  down: 'Down (or no evidence of running)',
  filteringNote:
    'Active means a valid policy was loaded and enforced. Inactive means safespot was running without an enforced policy (it then forwards nothing). Down means no safespot process was running, or nothing in the journal proves one was (after a crash, from its last sign of life); down time counts as not active. While the appliance runs, a report is measured until its last sign of life.',
  gapHead: ['from', 'to', 'state', 'duration'],
  noGaps: 'filtering was active for the whole measured period',
  states: { inactive: 'inactive', down: 'down' },
  blockedRequests: 'Blocked requests',
  blockedImages: 'Blocked images',
  category: 'category',
  matchType: 'match type',
  requests: 'requests',
  images: 'images',
  blocksPerDay: 'Blocks per day (UTC)',
  monitored: 'Monitored (would have been blocked)',
  lists: 'Lists',
  listsNote:
    'Largest gap: the longest stretch without a successful load or refresh, counted from the last success before the period (or the period start) to the end of what was measured.',
  listHead: ['list', 'loads', 'refreshes', 'failures', 'last success', 'largest gap', 'largest gap at', ''],
  never: 'never',
  allLists: '(all lists)',
  historyHead: ['time', 'list', 'event', 'detail'],
  moreHistory: '{n} more list events are in the JSON form of this report.',
  keeping: 'How the journal kept these events',
  keptAggregated: 'Blocks kept as per-minute counts (in the figures above, without URL or client)',
  aggregateRows: 'Aggregate rows',
  reason: 'reason',
  lostEvents: 'Events that could not be written (in no figure above)',
  keepingNote:
    'Past journal.eventsPerMinute per key and minute, past journal.maxBytes, or while the disk refused writes, blocks are kept as one row per minute with a count: they are in every figure, without URL or client.',
  lostNote: '{lost} event(s) could not be written at all (reasons above); the blocked figures may be short by at most that many.',
  noLoss: 'No event was lost.',
  selftests: 'Self-tests: {passed} passed, {failed} failed',
  selftestHead: ['category', 'passed', 'failed', 'last result'],
  failureHead: ['time', 'category', 'detail'],
  noFailures: 'no failed self-tests',
  none: 'none',
  pass: 'pass',
  fail: 'fail',
  lastResult: '{result} at {time}',
};

export const sq: ReportStrings = {
  lang: 'sq',
  title: 'Raport auditimi i safespot',
  periodFrom: 'Periudha nga',
  periodTo: 'Periudha deri (pa përfshirë)',
  measuredUntil: 'Matur deri më',
  generatedAt: 'Krijuar më',
  journal: 'Regjistri',
  venue: 'Lokali',
  venueId: 'Identifikuesi i lokalit',
  generator: 'Krijuar nga',
  verification: 'Verifikimi',
  fingerprint: 'Gjurma e çelësit të pajisjes',
  verifierKey: 'Çelësi i pajisjes (çelësi i verifikimit)',
  checkpoint: 'Pika e kontrollit që e mbulon',
  checkpointValue: '{size} rreshta të regjistrit, nënshkruar më {time}',
  root: 'Rrënja e pemës (SHA-256, base64)',
  verifyCommand: 'Komanda e verifikimit',
  verifyHow:
    'Ky raport është nënshkruar nga pajisja. Me çelësin e pajisjes të ruajtur si `{keyfile}` (nga `safespot audit key`; krahasoni gjurmën e tij me atë më sipër) dhe skedarin e nënshkrimit `{file}.sig` pranë këtij skedari, komanda më poshtë del me 0 kur raporti është i pandryshuar; shtoni `--journal FILE` për të kontrolluar çdo shifër kundrejt regjistrit.',
  unsigned: 'Ky raport nuk është i nënshkruar: nuk përmend asnjë çelës pajisjeje dhe nuk mund të verifikohet.',
  policies: 'Versionet e politikës në fuqi',
  policyVersion: 'versioni',
  policySince: 'në fuqi që nga',
  policyHow: 'ngarkuar nga',
  policyAtStart: 'në fuqi në fillim të periudhës',
  filteringActive: 'Filtrimi aktiv',
  fraction: 'Pjesa e periudhës me filtrim aktiv',
  active: 'Aktiv',
  inactive: 'Në punë pa politikë të zbatuar',
  down: 'Jashtë pune (ose pa prova se punonte)',
  filteringNote:
    'Aktiv do të thotë se një politikë e vlefshme ishte ngarkuar dhe zbatohej. Joaktiv do të thotë se safespot punonte pa politikë të zbatuar (atëherë nuk përcjell asgjë). Jashtë pune do të thotë se asnjë proces safespot nuk punonte, ose se asgjë në regjistër nuk e provon (pas një ndërprerjeje, nga shenja e fundit e jetës); koha jashtë pune llogaritet si joaktive. Ndërsa pajisja punon, raporti matet deri te shenja e saj e fundit e jetës.',
  gapHead: ['nga', 'deri', 'gjendja', 'kohëzgjatja'],
  noGaps: 'filtrimi ishte aktiv gjatë gjithë periudhës së matur',
  states: { inactive: 'joaktiv', down: 'jashtë pune' },
  blockedRequests: 'Kërkesa të bllokuara',
  blockedImages: 'Imazhe të bllokuara',
  category: 'kategoria',
  matchType: 'lloji i përputhjes',
  requests: 'kërkesa',
  images: 'imazhe',
  blocksPerDay: 'Bllokime në ditë (UTC)',
  monitored: 'Të monitoruara (do të ishin bllokuar)',
  lists: 'Listat',
  listsNote:
    'Boshllëku më i madh: periudha më e gjatë pa ngarkim ose rifreskim të suksesshëm, e numëruar nga suksesi i fundit para periudhës (ose fillimi i periudhës) deri në fund të asaj që u mat.',
  listHead: ['lista', 'ngarkime', 'rifreskime', 'dështime', 'suksesi i fundit', 'boshllëku më i madh', 'boshllëku më i madh më', ''],
  never: 'asnjëherë',
  allLists: '(të gjitha listat)',
  historyHead: ['koha', 'lista', 'ngjarja', 'hollësi'],
  moreHistory: '{n} ngjarje të tjera të listave janë në formën JSON të këtij raporti.',
  keeping: 'Si i mbajti regjistri këto ngjarje',
  keptAggregated: 'Bllokime të mbajtura si numërime për minutë (në shifrat më sipër, pa URL ose klient)',
  aggregateRows: 'Rreshta përmbledhës',
  reason: 'arsyeja',
  lostEvents: 'Ngjarje që nuk mund të shkruheshin (në asnjë shifër më sipër)',
  keepingNote:
    'Përtej journal.eventsPerMinute për çelës dhe minutë, përtej journal.maxBytes, ose kur disku refuzonte shkrimet, bllokimet mbahen si një rresht në minutë me një numër: ato janë në çdo shifër, pa URL ose klient.',
  lostNote: '{lost} ngjarje nuk mund të shkruheshin fare (arsyet më sipër); shifrat e bllokimeve mund të jenë më të ulëta me të shumtën aq.',
  noLoss: 'Asnjë ngjarje nuk humbi.',
  selftests: 'Vetëtestet: {passed} kaluan, {failed} dështuan',
  selftestHead: ['kategoria', 'kaluan', 'dështuan', 'rezultati i fundit'],
  failureHead: ['koha', 'kategoria', 'hollësi'],
  noFailures: 'asnjë vetëtest i dështuar',
  none: 'asnjë',
  pass: 'kaloi',
  fail: 'dështoi',
  lastResult: '{result} më {time}',
};

export const REPORT_STRINGS: Readonly<Record<ReportLang, ReportStrings>> = { en, sq };

/** Replace `{name}` placeholders (values are inserted as they are: escape the result). */
export function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in values ? String(values[k]) : m));
}
