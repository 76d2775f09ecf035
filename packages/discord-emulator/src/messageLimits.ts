import type {
  APIAllowedMentions,
  APIAttachment,
  APIEmbed,
  APIMessageTopLevelComponent,
  RESTAPIMessageReference,
} from 'discord-api-types/v10';
import { DiscordErrors, invalidFormBody } from './HttpError.js';

/** Discord's message limits (https://discord.com/developers/docs/resources/message#create-message). */
export const LIMITS = {
  content: 2000,
  embeds: 10,
  embedTitle: 256,
  embedDescription: 4096,
  embedFields: 25,
  embedFieldName: 256,
  embedFieldValue: 1024,
  embedFooter: 2048,
  embedAuthorName: 256,
  embedTotal: 6000,
  actionRows: 5,
  rowComponents: 5,
  customId: 100,
  buttonLabel: 80,
} as const;

/** A message body as sent to create, edit or answer with, parsed and checked against Discord's limits. */
export interface MessagePayload {
  /** `null` in an edit clears the content. */
  readonly content?: string | null;
  readonly embeds?: APIEmbed[];
  readonly components?: APIMessageTopLevelComponent[];
  readonly allowed_mentions?: APIAllowedMentions;
  readonly message_reference?: RESTAPIMessageReference;
  readonly flags?: number;
  readonly nonce?: string | number;
  readonly tts?: boolean;
  /** Files uploaded with the request (multipart), as attachments. */
  readonly attachments?: APIAttachment[];
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const tooLong = (path: string[], max: number) =>
  invalidFormBody(path, 'BASE_TYPE_MAX_LENGTH', `Must be ${max} or fewer in length.`);

function checkLength(value: unknown, max: number, path: string[]): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'string') throw invalidFormBody(path, 'BASE_TYPE_STRING', 'Must be a string.');
  if (value.length > max) throw tooLong(path, max);
  return value.length;
}

/** Embed limits per field, then the 6000-character total across all embeds of the message. */
function checkEmbeds(embeds: unknown): APIEmbed[] | undefined {
  if (embeds === undefined || embeds === null) return undefined;
  if (!Array.isArray(embeds)) throw invalidFormBody(['embeds'], 'BASE_TYPE_ARRAY', 'Must be an array.');
  if (embeds.length > LIMITS.embeds) throw tooLong(['embeds'], LIMITS.embeds);
  let total = 0;
  embeds.forEach((e: unknown, i) => {
    const at = ['embeds', String(i)];
    if (!isRecord(e)) throw invalidFormBody(at, 'DICT_TYPE_CONVERT', 'Only dictionaries may be used.');
    total += checkLength(e.title, LIMITS.embedTitle, [...at, 'title']);
    total += checkLength(e.description, LIMITS.embedDescription, [...at, 'description']);
    if (isRecord(e.footer))
      total += checkLength(e.footer.text, LIMITS.embedFooter, [...at, 'footer', 'text']);
    if (isRecord(e.author))
      total += checkLength(e.author.name, LIMITS.embedAuthorName, [...at, 'author', 'name']);
    const fields: unknown[] = Array.isArray(e.fields) ? e.fields : [];
    if (fields.length > LIMITS.embedFields) throw tooLong([...at, 'fields'], LIMITS.embedFields);
    fields.forEach((f, j) => {
      const fat = [...at, 'fields', String(j)];
      if (!isRecord(f)) throw invalidFormBody(fat, 'DICT_TYPE_CONVERT', 'Only dictionaries may be used.');
      if (typeof f.name !== 'string' || typeof f.value !== 'string')
        throw invalidFormBody(fat, 'BASE_TYPE_REQUIRED', 'This field is required');
      total += checkLength(f.name, LIMITS.embedFieldName, [...fat, 'name']);
      total += checkLength(f.value, LIMITS.embedFieldValue, [...fat, 'value']);
    });
  });
  if (total > LIMITS.embedTotal) {
    throw invalidFormBody(
      ['embeds'],
      'MAX_EMBED_SIZE_EXCEEDED',
      `Embed size exceeds maximum size of ${LIMITS.embedTotal}`,
    );
  }
  return embeds as APIEmbed[];
}

/** Action rows of buttons and selects: 5 rows of 5, custom ids up to 100, labels up to 80. */
function checkComponents(components: unknown): APIMessageTopLevelComponent[] | undefined {
  if (components === undefined || components === null) return undefined;
  if (!Array.isArray(components))
    throw invalidFormBody(['components'], 'BASE_TYPE_ARRAY', 'Must be an array.');
  if (components.length > LIMITS.actionRows) throw tooLong(['components'], LIMITS.actionRows);
  components.forEach((row: unknown, i) => {
    const at = ['components', String(i)];
    if (!isRecord(row)) throw invalidFormBody(at, 'DICT_TYPE_CONVERT', 'Only dictionaries may be used.');
    if (row.type !== 1 || !Array.isArray(row.components)) return;
    const children: unknown[] = row.components;
    if (children.length > LIMITS.rowComponents) throw tooLong([...at, 'components'], LIMITS.rowComponents);
    children.forEach((c, j) => {
      if (!isRecord(c)) return;
      const cat = [...at, 'components', String(j)];
      checkLength(c.custom_id, LIMITS.customId, [...cat, 'custom_id']);
      checkLength(c.label, LIMITS.buttonLabel, [...cat, 'label']);
      if (c.type === 2 && c.style !== 5 && c.style !== 6 && typeof c.custom_id !== 'string')
        throw invalidFormBody([...cat, 'custom_id'], 'BASE_TYPE_REQUIRED', 'This field is required');
    });
  });
  return components as APIMessageTopLevelComponent[];
}

/**
 * Parses a create/edit/interaction message body and enforces Discord's limits: content over 2000 characters
 * (counted in UTF-16 code units, never more lenient than Discord) or embeds over theirs give 400 code 50035.
 * With `requireSome`, a message with no content, embeds, components or files gives 400 code 50006.
 */
export function parseMessagePayload(
  body: unknown,
  opts: { requireSome: boolean; attachments?: APIAttachment[] },
): MessagePayload {
  const b = isRecord(body) ? body : {};
  let content: string | null | undefined;
  if (b.content === null) content = null;
  else if (b.content !== undefined) {
    content = typeof b.content === 'string' ? b.content : String(b.content);
    checkLength(content, LIMITS.content, ['content']);
  }
  const embeds = checkEmbeds(b.embeds);
  const components = checkComponents(b.components);
  const attachments = opts.attachments ?? [];
  if (opts.requireSome && isEmpty(content, embeds, components, attachments))
    throw DiscordErrors.emptyMessage();
  return {
    ...(content !== undefined && { content }),
    ...(embeds && { embeds }),
    ...(components && { components }),
    ...(isRecord(b.allowed_mentions) && { allowed_mentions: b.allowed_mentions as APIAllowedMentions }),
    ...(isRecord(b.message_reference) && {
      message_reference: b.message_reference as unknown as RESTAPIMessageReference,
    }),
    ...(typeof b.flags === 'number' && { flags: b.flags }),
    ...((typeof b.nonce === 'string' || typeof b.nonce === 'number') && { nonce: b.nonce }),
    ...(typeof b.tts === 'boolean' && { tts: b.tts }),
    ...(attachments.length > 0 && { attachments }),
  };
}

/** Discord trims content: whitespace alone does not make a message. */
export function isEmpty(
  content: string | null | undefined,
  embeds: readonly unknown[] | undefined,
  components: readonly unknown[] | undefined,
  attachments: readonly unknown[] | undefined,
): boolean {
  return (
    (content ?? '').trim() === '' &&
    (embeds?.length ?? 0) === 0 &&
    (components?.length ?? 0) === 0 &&
    (attachments?.length ?? 0) === 0
  );
}
