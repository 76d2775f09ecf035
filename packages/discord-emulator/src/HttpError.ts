/** A REST failure the emulator answers with: HTTP status, Discord's JSON error body and extra headers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(`${status} ${String(body.message)}${body.code ? ` (code ${String(body.code)})` : ''}`);
    this.name = 'HttpError';
  }
}

/**
 * 400 Invalid Form Body (50035) with Discord's nested `errors` shape, e.g. path ['embeds', '0', 'title'] gives
 * `{embeds: {0: {title: {_errors: [{code, message}]}}}}`.
 */
export function invalidFormBody(path: readonly string[], code: string, message: string): HttpError {
  let errors: Record<string, unknown> = { _errors: [{ code, message }] };
  for (const key of [...path].reverse()) errors = { [key]: errors };
  return new HttpError(400, { code: 50035, message: 'Invalid Form Body', errors });
}

const jsonError = (status: number, code: number, message: string) => () =>
  new HttpError(status, { message, code });

/** The Discord errors the emulator gives, by name. Codes from discord-api-types' RESTJSONErrorCodes. */
export const DiscordErrors = {
  unauthorized: jsonError(401, 0, '401: Unauthorized'),
  notFound: jsonError(404, 0, '404: Not Found'),
  unknownChannel: jsonError(404, 10003, 'Unknown Channel'),
  unknownGuild: jsonError(404, 10004, 'Unknown Guild'),
  unknownMember: jsonError(404, 10007, 'Unknown Member'),
  unknownMessage: jsonError(404, 10008, 'Unknown Message'),
  unknownWebhook: jsonError(404, 10015, 'Unknown Webhook'),
  unknownInteraction: jsonError(404, 10062, 'Unknown interaction'),
  oldMessageEdits: jsonError(
    400,
    30046,
    'Maximum number of edits to messages older than 1 hour reached. Try again later.',
  ),
  alreadyAcknowledged: jsonError(400, 40060, 'Interaction has already been acknowledged.'),
  cannotEditOthers: jsonError(403, 50005, 'Cannot edit a message authored by another user'),
  emptyMessage: jsonError(400, 50006, 'Cannot send an empty message'),
  wrongChannelType: jsonError(400, 50024, 'Cannot execute action on this channel type'),
  archivedThread: jsonError(400, 50083, 'Thread is archived'),
  invalidJson: jsonError(400, 50109, 'The request body contains invalid JSON.'),
  threadAlreadyCreated: jsonError(400, 160004, 'A thread has already been created for this message'),
} as const;
