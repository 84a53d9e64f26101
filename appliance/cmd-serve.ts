/** `safespot serve [--config FILE]`: run the appliance (composition lives in serve.ts). */
import type { Command } from './io.js';
import { parseCommandArgs } from './io.js';
import { loadConfigFile } from './config.js';

export const run: Command = async (args, io) => {
  const { values } = parseCommandArgs(args, { config: { type: 'string', short: 'c' } }, 'safespot serve [--config FILE]');
  const config = values.config ? loadConfigFile(values.config) : undefined;
  io.stderr.write(`safespot: serve is being assembled (config ${config ? 'valid' : 'embedded'})\n`);
  return 1;
};
