/**
 * `safespot serve [--config FILE]`: run the appliance until SIGTERM/SIGINT (drain, bounded, then
 * exit 0; a second signal exits at once). SIGHUP re-reads the config file and the lists and swaps
 * the policy without dropping a connection; a bad file is refused (every problem logged) and the
 * running configuration keeps serving. Listener addresses are fixed at start.
 */
import { loadConfigFile, type Config } from './config.js';
import { defaultConfig } from './default-config.js';
import { parseCommandArgs, type Command } from './io.js';
import { createLogger } from './log.js';
import { startAppliance } from './serve.js';

export const run: Command = async (args, io) => {
  const { values } = parseCommandArgs(args, { config: { type: 'string', short: 'c' } }, 'safespot serve [--config FILE]');
  const configPath = values.config ?? process.env.SAFESPOT_CONFIG;
  const config: Readonly<Config> = configPath ? loadConfigFile(configPath) : defaultConfig();
  const log = createLogger(io.stderr, config.logLevel);
  const app = await startAppliance(config, log, configPath ? { configPath } : {});
  const addresses = app.proxy.addresses();
  log.info('safespot serving', {
    config: configPath ?? 'embedded default',
    listeners: addresses,
    admin: app.admin ? `${config.admin?.host}:${app.admin.port}` : null,
    policy: app.holder.current?.version ?? null,
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
    process.on('SIGHUP', () => void app.reloadFromFile());
  });
};
