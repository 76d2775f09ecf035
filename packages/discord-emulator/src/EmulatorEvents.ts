import type { APIMessage } from 'discord-api-types/v10';

/** One REST request as the emulator answered it. */
export interface RequestLogEntry {
  /** When the answer was sent, ms since the Unix epoch (emulator clock). */
  readonly at: number;
  readonly method: string;
  /** The route pattern, e.g. `POST /channels/:id/messages`; for unknown routes `METHOD /path`. */
  readonly route: string;
  /** The path under /api/v10, e.g. `/channels/123/messages`. */
  readonly path: string;
  readonly status: number;
  readonly body?: unknown;
  readonly response?: unknown;
}

/** A gateway dispatch as sent (before per-connection intent filtering). */
export interface DispatchEvent {
  readonly t: string;
  readonly d: unknown;
}

/** What `emu.events` emits. */
export interface EmulatorEvents {
  request: [entry: RequestLogEntry];
  messageCreate: [message: APIMessage];
  messageUpdate: [message: APIMessage];
  messageDelete: [message: APIMessage];
  dispatch: [event: DispatchEvent];
}
