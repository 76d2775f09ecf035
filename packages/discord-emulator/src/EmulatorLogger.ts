/** The part of a pino logger the emulator uses: `(fields, message)`. A pino `Logger` fits. */
export interface EmulatorLogger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

const nothing = (): void => {};

/** Logs nothing: the default. */
export const silentEmulatorLogger: EmulatorLogger = {
  debug: nothing,
  info: nothing,
  warn: nothing,
  error: nothing,
};
