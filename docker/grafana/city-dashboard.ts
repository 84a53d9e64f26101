/**
 * The city overview dashboard (issue 20, point 4), built from typed code with Grafana's own
 * @grafana/grafana-foundation-sdk instead of hand-written JSON: the builders type every field, so a
 * misspelt option or a panel without a query does not compile.
 *
 *   npm run build && node dist/docker/grafana/city-dashboard.js > docker/grafana/dashboards/safespot-city.json
 *
 * test/integration/city-dashboard.test.ts keeps the committed JSON equal to this output and runs every
 * panel's query against a real Prometheus holding a live scrape of a real appliance.
 * Metrics arrive at the city's store from docker/prometheus/agent.yml with the `venue` label; the
 * variable `venue` selects one venue, several, or the whole city.
 */
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { pathToFileURL } from 'node:url';

/** The datasource of docker/grafana/provisioning/datasources/prometheus.yml (point it at the city's store). */
const DS = { type: 'prometheus', uid: 'safespot-prometheus' };
const V = 'venue=~"$venue"';
const GUEST_BLOCKS = `${V}, action="block", listener!="selftest"`;

/** Every panel's queries, exported so the test runs exactly these against a real Prometheus. */
export const QUERIES = {
  venuesReporting: `count(count by (venue) (safespot_build_info{${V}}))`,
  venuesInactive: `count(min by (venue) (safespot_filtering_active{${V}}) == 0) or vector(0)`,
  venuesStale: `count(count by (venue) ((time() - safespot_policy_last_refresh_timestamp_seconds{${V}}) > 2 * (safespot_policy_refresh_interval_seconds{${V}} > 0))) or vector(0)`,
  venuesSelftestFailing: `count(min by (venue) (safespot_selftest_success{${V}}) == 0) or vector(0)`,
  venuesSilent: `count(count by (venue) (max_over_time(up{job="safespot", ${V}}[6h])) unless count by (venue) (max_over_time(up{job="safespot", ${V}}[10m]))) or vector(0)`,
  blockedInPeriod: `sum(increase(safespot_requests_total{${GUEST_BLOCKS}}[$__range]))`,
  tableFiltering: `min by (venue) (safespot_filtering_active{${V}})`,
  tableOldestList: `max by (venue) (time() - safespot_policy_last_refresh_timestamp_seconds{${V}})`,
  tableSelftest: `min by (venue) (safespot_selftest_success{${V}})`,
  tableBlocked: `sum by (venue) (increase(safespot_requests_total{${GUEST_BLOCKS}}[$__range]))`,
  tableAppliances: `count by (venue) (safespot_build_info{${V}})`,
  blocksPerVenue: `sum by (venue) (increase(safespot_requests_total{${GUEST_BLOCKS}}[$__range]))`,
  blocksPerVenueOverTime: `sum by (venue) (increase(safespot_requests_total{${GUEST_BLOCKS}}[$__rate_interval]))`,
  blocksPerCategory: `sum by (category) (increase(safespot_requests_total{${GUEST_BLOCKS}}[$__range]))`,
} as const;

function query(expr: string, refId = 'A', legend?: string): prometheus.DataqueryBuilder {
  const q = new prometheus.DataqueryBuilder().expr(expr).refId(refId).datasource(DS);
  return legend ? q.legendFormat(legend) : q;
}

function instantTable(expr: string, refId: string): prometheus.DataqueryBuilder {
  return query(expr, refId).instant().format(prometheus.PromQueryFormat.Table);
}

/** A stat that is green at 0 and red from 1: a count of venues with a problem. */
function problemCount(title: string, expr: string, description: string): stat.PanelBuilder {
  return new stat.PanelBuilder()
    .title(title)
    .description(description)
    .withTarget(query(expr).instant())
    .datasource(DS)
    .height(4)
    .span(4)
    .thresholds(new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps([
      { value: null, color: 'green' },
      { value: 1, color: 'red' },
    ]));
}

export function cityDashboard(): dashboard.Dashboard {
  const venue = new dashboard.QueryVariableBuilder('venue')
    .label('Venue')
    .description('Venues as named by their agents (SAFESPOT_VENUE, docker/prometheus/agent.yml).')
    .datasource(DS)
    .query({ query: 'label_values(safespot_build_info, venue)', refId: 'venues', qryType: 1 })
    .definition('label_values(safespot_build_info, venue)')
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue('.*');

  return new dashboard.DashboardBuilder('safespot: city overview')
    .uid('safespot-city')
    .tags(['safespot', 'city'])
    .description('All venues of a city programme: which venues filter, which have stale lists or failing self-tests, which are silent, and blocks per venue.')
    .refresh('1m')
    .time({ from: 'now-30d', to: 'now' })
    .timezone('browser')
    .withVariable(venue)
    .withRow(new dashboard.RowBuilder('City'))
    .withPanel(new stat.PanelBuilder().title('Venues reporting').description('Venues with at least one appliance pushing metrics now.')
      .withTarget(query(QUERIES.venuesReporting).instant()).datasource(DS).height(4).span(4))
    .withPanel(problemCount('Venues with filtering inactive', QUERIES.venuesInactive, 'Venues where an appliance has no valid policy (it fails closed).'))
    .withPanel(problemCount('Venues with a stale list', QUERIES.venuesStale, 'Venues where a list was last refreshed more than twice its refresh interval ago.'))
    .withPanel(problemCount('Venues with a failing self-test', QUERIES.venuesSelftestFailing, 'Venues where a category\'s canary is not blocked.'))
    .withPanel(problemCount('Venues silent', QUERIES.venuesSilent, 'Venues that pushed in the last 6 h and nothing for 10 min (agent, uplink or appliance down).'))
    .withPanel(new stat.PanelBuilder().title('Blocked in the period').description('Guest requests blocked in the chosen period, all selected venues (self-tests excluded).')
      .withTarget(query(QUERIES.blockedInPeriod).instant()).datasource(DS).height(4).span(4))
    .withRow(new dashboard.RowBuilder('Venues'))
    .withPanel(new table.PanelBuilder().title('Venues').description('One row per venue: filtering active (1 = yes), oldest list (seconds), self-test (1 = every canary blocked), appliances, blocked in the period.')
      .targets([
        instantTable(QUERIES.tableFiltering, 'filtering'),
        instantTable(QUERIES.tableOldestList, 'oldest_list'),
        instantTable(QUERIES.tableSelftest, 'selftest'),
        instantTable(QUERIES.tableAppliances, 'appliances'),
        instantTable(QUERIES.tableBlocked, 'blocked'),
      ])
      .withTransformation({ id: 'merge', options: {} })
      .datasource(DS).height(10).span(24))
    .withPanel(new bargauge.PanelBuilder().title('Blocks per venue in the period')
      .withTarget(query(QUERIES.blocksPerVenue, 'A', '{{venue}}').instant()).datasource(DS).height(8).span(12))
    .withPanel(new bargauge.PanelBuilder().title('Blocks per category in the period, selected venues')
      .withTarget(query(QUERIES.blocksPerCategory, 'A', '{{category}}').instant()).datasource(DS).height(8).span(12))
    .withPanel(new timeseries.PanelBuilder().title('Blocks per venue')
      .withTarget(query(QUERIES.blocksPerVenueOverTime, 'A', '{{venue}}')).datasource(DS).height(8).span(24))
    .build();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`${JSON.stringify(cityDashboard(), null, 2)}\n`);
}
