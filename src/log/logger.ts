import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger } from 'pino';

/** Paths redacted wherever they appear in a log line: tokens never reach the logs. */
export const REDACT_PATHS = [
  'token',
  'discordToken',
  'DISCORD_TOKEN',
  '*.token',
  '*.discordToken',
  '*.DISCORD_TOKEN',
  'config.discordToken',
  'env.DISCORD_TOKEN',
  'headers.authorization',
  '*.headers.authorization',
  'authorization',
];

/** The one root logger of a bot instance. Sessions get children via `sessionLogger`. */
export function createLogger(
  level: LoggerOptions['level'] = 'info',
  destination?: DestinationStream,
): Logger {
  const options: LoggerOptions = {
    level,
    base: { app: 'threadwarden' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A silent logger for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
