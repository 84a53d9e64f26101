/**
 * The appliance's operational log: one JSON object per line on stderr (containers collect it).
 * Privacy: callers pass no client address and no URL; the log says what the appliance did, not
 * where guests went.
 */
import type { Writable } from 'node:stream';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(out: Writable, level: LogLevel = 'info'): Logger {
  const emit = (l: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (RANK[l] > RANK[level]) return;
    out.write(`${JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...fields })}\n`);
  };
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
  };
}
