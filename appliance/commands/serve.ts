/**
 * `safespot serve [--config FILE]`: run the appliance until SIGTERM/SIGINT (drain, bounded, then
 * exit 0; a second signal exits at once). SIGHUP re-reads the config file and the lists and swaps
 * the policy without dropping a connection; a bad file is refused (every problem logged) and the
 * running configuration keeps serving. Listener addresses are fixed at start. With `workers` > 1
 * the same signals go to the primary, which stops or reloads its workers (docs/workers.md); the
 * DNS listener, when set, runs in the primary (docs/dns.md).
 */
import { loadConfigFile, type Config } from '../config.js';
import { defaultConfig } from '../default-config.js';
import { parseCommandArgs, type Command } from '../io.js';
import { createLogger } from '../log.js';
import { startAppliance } from '../serve/serve.js';
import { startCluster, workerCount } from '../serve/cluster.js';

export const run: Command = async (args, io) => {
  const { values } = parseCommandArgs(args, { config: { type: 'string', short: 'c' } }, 'safespot serve [--config FILE]');
  const configPath = values.config ?? process.env.SAFESPOT_CONFIG;
  const config: Readonly<Config> = configPath ? loadConfigFile(configPath) : defaultConfig();
  const log = createLogger(io.stderr, config.logLevel);
  const options = configPath ? { configPath } : {};
  // `workers` > 1: a cluster (serve/cluster.ts, docs/workers.md); 1 is the single-process appliance.
  const cluster = workerCount(config) > 1;
  const app = cluster ? await startCluster(config, log, options) : await startAppliance(config, log, options);
  const dns = 'dns' in app && app.dns ? { dns: app.dns.address() } : {};
  const addresses = { ...app.proxy.addresses(), ...dns };
  log.info('safespot serving', {
    config: configPath ?? 'embedded default',
    listeners: addresses,
    admin: app.admin ? `${config.admin?.host}:${app.admin.port}` : null,
    policy: app.holder.current?.version ?? null,
    ...('workers' in app ? { workers: app.workers() } : {}),
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn('second signal: exiting without draining', { signal });
        process.exit(1);
      }
      stopping = true;
      log.info('draining', { signal });
      app.close().then(
        () => {
          log.info('stopped');
          resolve(0);
        },
        (err) => {
          log.error('error while stopping', { error: String(err) });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => void app.reloadFromFile('sighup'));
  });
};
