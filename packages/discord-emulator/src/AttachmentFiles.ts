import type { IncomingMessage, ServerResponse } from 'node:http';
import type { APIAttachment } from 'discord-api-types/v10';

/** A file a test user attaches to a message. */
export interface UserAttachment {
  readonly name: string;
  readonly data: string | Uint8Array;
  /** Media type Discord reports; omitted when absent (as Discord does for unknown types). */
  readonly contentType?: string;
  /** The size reported in the message, bytes; default the real size (a different value plays a lying upload). */
  readonly size?: number;
  /** Answer downloads with this HTTP status and no bytes (an expired or removed CDN file). */
  readonly status?: number;
  /** Downloads wait for this before answering (a slow CDN, under the test's control). */
  readonly hold?: Promise<unknown>;
}

/** One GET of an attachment's URL. */
export interface AttachmentDownload {
  readonly path: string;
  readonly status: number;
  readonly bytes: number;
}

interface StoredFile {
  readonly data: Buffer;
  readonly contentType: string | undefined;
  readonly status: number;
  readonly hold: Promise<unknown> | undefined;
}

/**
 * Discord's attachment CDN, on the emulator's own port: a user's attachments are stored by URL path
 * (`/attachments/<channel>/<attachment id>/<name>`, the shape of cdn.discordapp.com) and served with
 * Content-Length and Content-Type. Every download is recorded.
 */
export class AttachmentFiles {
  private readonly files = new Map<string, StoredFile>();
  readonly downloads: AttachmentDownload[] = [];
  /** Paths asked for, in order, when asked (a held download is listed here before it is answered). */
  readonly requested: string[] = [];

  constructor(private readonly base: () => string) {}

  /** Stores the files and returns the attachment objects a message carries. */
  add(channelId: string, files: readonly UserAttachment[], id: () => string): APIAttachment[] {
    return files.map((f) => {
      const attachmentId = id();
      const data = Buffer.from(f.data);
      const path = `/attachments/${channelId}/${attachmentId}/${encodeURIComponent(f.name)}`;
      this.files.set(path, { data, contentType: f.contentType, status: f.status ?? 200, hold: f.hold });
      const url = `${this.base()}${path}`;
      return {
        id: attachmentId,
        filename: f.name,
        size: f.size ?? data.length,
        url,
        proxy_url: url,
        ...(f.contentType !== undefined && { content_type: f.contentType }),
      };
    });
  }

  /** Answers a request when its path is an attachment's (true), else leaves it to the REST router (false). */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (!path.startsWith('/attachments/')) return false;
    const file = req.method === 'GET' || req.method === 'HEAD' ? this.files.get(path) : undefined;
    this.requested.push(path);
    if (file?.hold) {
      file.hold.then(
        () => this.answer(req, res, path, file),
        () => this.answer(req, res, path, file),
      );
      return true;
    }
    this.answer(req, res, path, file);
    return true;
  }

  private answer(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    file: StoredFile | undefined,
  ): void {
    if (file?.status !== 200) {
      const status = file?.status ?? 404;
      this.downloads.push({ path, status, bytes: 0 });
      res.writeHead(status, { 'content-type': 'text/plain' }).end();
      return;
    }
    this.downloads.push({ path, status: 200, bytes: file.data.length });
    res.writeHead(200, {
      'content-length': file.data.length,
      'content-type': file.contentType ?? 'application/octet-stream',
    });
    res.end(req.method === 'HEAD' ? undefined : file.data);
  }
}
