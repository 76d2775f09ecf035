import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../log/logger.js';
import { safeAttachmentName, uniqueName } from './attachmentName.js';
import type { SavedAttachment } from './sessionTypes.js';

/** An attachment as Discord describes it (parsed from the message at the edge). */
export interface IncomingAttachment {
  readonly id: string;
  readonly name: string;
  readonly url: string;
  /** Size Discord reports, bytes; checked before download and again while downloading. */
  readonly size: number;
  readonly contentType?: string | null | undefined;
}

export type RefusalReason = 'too_big' | 'message_too_big' | 'unreachable' | 'bad_name';

export interface RefusedAttachment {
  readonly name: string;
  readonly reason: RefusalReason;
  /** Extra detail for the user (an HTTP status, a limit). */
  readonly detail: string;
}

export interface IntakeResult {
  readonly saved: readonly SavedAttachment[];
  readonly refused: readonly RefusedAttachment[];
}

export interface AttachmentIntakeOptions {
  /** Largest file taken, bytes (ATTACHMENT_MAX_BYTES). */
  readonly maxFileBytes: number;
  /** Largest total of one message's files, bytes (ATTACHMENT_MAX_MESSAGE_BYTES). */
  readonly maxMessageBytes: number;
  /** One download gives up after this long, ms. */
  readonly timeoutMs?: number;
  readonly logger: Logger;
  /** Injected for tests of unreachable hosts; default the global fetch. */
  readonly fetch?: typeof fetch;
}

const BY_EXTENSION: Record<string, string> = {
  txt: 'text/plain',
  log: 'text/plain',
  md: 'text/markdown',
  json: 'application/json',
  csv: 'text/csv',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  pdf: 'application/pdf',
};

/** The attachment's media type without parameters; from the extension when Discord gave none. */
export function mediaType(name: string, contentType: string | null | undefined): string {
  const given = contentType?.split(';')[0]?.trim().toLowerCase();
  if (given && /^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(given)) return given;
  const ext = name.slice(name.lastIndexOf('.') + 1).toLowerCase();
  return BY_EXTENSION[ext] ?? 'application/octet-stream';
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** Tells the user which files did not reach the agent and why, one line each. */
export function refusalText(refused: readonly RefusedAttachment[]): string {
  const why: Record<RefusalReason, string> = {
    too_big: 'too big',
    message_too_big: "over this message's total",
    unreachable: 'could not be downloaded',
    bad_name: 'its name cannot be saved safely',
  };
  const lines = refused
    .slice(0, 20)
    .map((r) => `- \`${r.name.replaceAll('`', "'").slice(0, 100)}\`: ${why[r.reason]} (${r.detail})`);
  if (refused.length > 20) lines.push(`- … and ${refused.length - 20} more`);
  return `📎 Not passed to the agent:\n${lines.join('\n')}`;
}

class TooBig extends Error {}

/**
 * Downloads a message's attachments into `<workspace>/attachments/<messageId>/` under safe names, one at a time,
 * with a cap per file and per message enforced on the bytes received (not only on the size Discord reports). A
 * file that is refused is listed with its reason, never dropped silently; a partial download leaves no file.
 */
export class AttachmentIntake {
  private readonly opts: AttachmentIntakeOptions;
  private readonly log: Logger;
  private readonly fetch: typeof fetch;

  constructor(options: AttachmentIntakeOptions) {
    this.opts = options;
    this.log = options.logger.child({ component: 'attachments' });
    this.fetch = options.fetch ?? fetch;
  }

  async take(
    workspace: string,
    messageId: string,
    attachments: readonly IncomingAttachment[],
  ): Promise<IntakeResult> {
    const saved: SavedAttachment[] = [];
    const refused: RefusedAttachment[] = [];
    if (attachments.length === 0) return { saved, refused };
    const dir = resolve(workspace, 'attachments', messageId.replace(/\D/g, '') || 'message');
    const taken = new Set<string>();
    let total = 0;
    for (const a of attachments) {
      const clean = safeAttachmentName(a.name);
      if (clean === undefined) {
        refused.push({ name: a.name, reason: 'bad_name', detail: 'a path or no usable characters' });
        continue;
      }
      const fileCap = this.opts.maxFileBytes;
      if (a.size > fileCap) {
        refused.push({
          name: a.name,
          reason: 'too_big',
          detail: `${formatBytes(a.size)}, limit ${formatBytes(fileCap)}`,
        });
        continue;
      }
      const left = this.opts.maxMessageBytes - total;
      if (a.size > left) {
        refused.push({
          name: a.name,
          reason: 'message_too_big',
          detail: `${formatBytes(a.size)}, ${formatBytes(Math.max(0, left))} left of ${formatBytes(this.opts.maxMessageBytes)}`,
        });
        continue;
      }
      const name = uniqueName(clean, taken);
      const path = join(dir, name);
      try {
        await mkdir(dir, { recursive: true });
        const size = await this.download(a.url, path, Math.min(fileCap, left));
        taken.add(name);
        total += size;
        saved.push({ path, name, mimeType: mediaType(a.name, a.contentType), size });
      } catch (err) {
        if (err instanceof TooBig) {
          refused.push({
            name: a.name,
            reason: Math.min(fileCap, left) === fileCap ? 'too_big' : 'message_too_big',
            detail: `more than ${formatBytes(Math.min(fileCap, left))} arrived`,
          });
        } else {
          this.log.warn({ err, name: a.name }, 'attachment download failed');
          refused.push({ name: a.name, reason: 'unreachable', detail: describe(err) });
        }
      }
    }
    return { saved, refused };
  }

  /** Streams `url` into `path` (through a `.part` file), failing past `cap` bytes. Resolves to the size. */
  private async download(url: string, path: string, cap: number): Promise<number> {
    if (!/^https?:\/\//i.test(url)) throw new Error('not an http(s) URL');
    const part = `${path}.part`;
    const signal = AbortSignal.timeout(this.opts.timeoutMs ?? 30_000);
    try {
      const res = await this.fetch(url, { signal, redirect: 'follow' });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      const declared = Number(res.headers.get('content-length') ?? Number.NaN);
      if (Number.isFinite(declared) && declared > cap) {
        await res.body.cancel();
        throw new TooBig();
      }
      let size = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          size += chunk.byteLength;
          done(size > cap ? new TooBig() : null, chunk);
        },
      });
      await pipeline(
        Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>),
        counter,
        createWriteStream(part, { flags: 'wx', mode: 0o644 }),
      );
      await rename(part, path);
      return size;
    } catch (err) {
      await rm(part, { force: true });
      throw err;
    }
  }
}

function describe(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string } };
  if (e.name === 'TimeoutError') return 'timed out';
  if (e.cause?.code) return e.cause.code;
  return e.message ?? String(err);
}
