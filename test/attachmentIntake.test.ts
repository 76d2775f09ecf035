import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AttachmentIntake, mediaType, refusalText } from '../src/discord/AttachmentIntake.js';
import { MAX_NAME, safeAttachmentName, uniqueName } from '../src/discord/attachmentName.js';
import { silentLogger } from '../src/log/logger.js';

let dir: string;
let server: Server;
let base: string;

/** Files served on 127.0.0.1; `/lying/N` declares no length and sends N bytes; `/missing` is 404. */
const files = new Map<string, Buffer>();

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tw-att-'));
  files.clear();
  server = createServer((req, res) => {
    const url = req.url ?? '';
    const lying = /^\/lying\/(\d+)$/.exec(url);
    if (lying) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(Buffer.alloc(Number(lying[1]), 'a'));
      return;
    }
    const body = files.get(url);
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const intake = (maxFileBytes = 1000, maxMessageBytes = 1500) =>
  new AttachmentIntake({ maxFileBytes, maxMessageBytes, logger: silentLogger(), timeoutMs: 5000 });

function serve(path: string, body: string | Buffer): string {
  files.set(path, Buffer.from(body));
  return `${base}${path}`;
}

describe('attachment intake', () => {
  it("saves a message's files under attachments/<message id>/ with their bytes, names and types", async () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]);
    const result = await intake().take(dir, '300000000000000003', [
      {
        id: '1',
        name: 'message.txt',
        url: serve('/a', 'a long paste'),
        size: 12,
        contentType: 'text/plain; charset=utf-8',
      },
      { id: '2', name: 'shot.png', url: serve('/b', png), size: png.length, contentType: 'image/png' },
      { id: '3', name: 'build.log', url: serve('/c', 'log line'), size: 8 },
    ]);
    expect(result.refused).toEqual([]);
    expect(result.saved.map((s) => [relative(dir, s.path), s.name, s.mimeType, s.size])).toEqual([
      ['attachments/300000000000000003/message.txt', 'message.txt', 'text/plain', 12],
      ['attachments/300000000000000003/shot.png', 'shot.png', 'image/png', 8],
      ['attachments/300000000000000003/build.log', 'build.log', 'text/plain', 8],
    ]);
    expect(readFileSync(result.saved[0]!.path, 'utf8')).toBe('a long paste');
    expect(readFileSync(result.saved[1]!.path)).toEqual(png);
  });

  it('refuses a file over the per-file cap and files past the per-message total, saving the rest', async () => {
    const result = await intake(1000, 1500).take(dir, '300000000000000003', [
      { id: '1', name: 'big.bin', url: serve('/big', Buffer.alloc(1001)), size: 1001 },
      { id: '2', name: 'a.txt', url: serve('/a', Buffer.alloc(900)), size: 900 },
      { id: '3', name: 'b.txt', url: serve('/b', Buffer.alloc(700)), size: 700 },
      { id: '4', name: 'c.txt', url: serve('/c', Buffer.alloc(600)), size: 600 },
    ]);
    expect(result.saved.map((s) => s.name)).toEqual(['a.txt', 'c.txt']);
    expect(result.refused.map((r) => [r.name, r.reason])).toEqual([
      ['big.bin', 'too_big'],
      ['b.txt', 'message_too_big'],
    ]);
    expect(refusalText(result.refused)).toBe(
      "📎 Not passed to the agent:\n- `big.bin`: too big (1001 B, limit 1000 B)\n- `b.txt`: over this message's total (700 B, 600 B left of 1.5 KB)",
    );
  });

  it('stops a download that sends more than its cap although Discord reported it small, leaving no file', async () => {
    const result = await intake(1000).take(dir, '300000000000000003', [
      { id: '1', name: 'liar.txt', url: `${base}/lying/50000`, size: 10 },
    ]);
    expect(result.saved).toEqual([]);
    expect(result.refused).toEqual([expect.objectContaining({ name: 'liar.txt', reason: 'too_big' })]);
    expect(readdirSync(join(dir, 'attachments/300000000000000003'))).toEqual([]);
  });

  it('tells an unreachable or missing file apart from a big one', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const result = await intake().take(dir, '300000000000000003', [
      { id: '1', name: 'gone.txt', url: `${base}/missing`, size: 5 },
      { id: '2', name: 'down.txt', url: `http://127.0.0.1:${port}/x`, size: 5 },
      { id: '3', name: 'odd.txt', url: 'file:///etc/passwd', size: 5 },
    ]);
    expect(result.saved).toEqual([]);
    expect(result.refused.map((r) => [r.name, r.reason, r.detail])).toEqual([
      ['gone.txt', 'unreachable', 'HTTP 404'],
      ['down.txt', 'unreachable', 'ECONNREFUSED'],
      ['odd.txt', 'unreachable', 'not an http(s) URL'],
    ]);
  });

  it('refuses names that would leave the folder and keeps same-named files apart', async () => {
    const result = await intake().take(dir, '300000000000000003', [
      { id: '1', name: '../../.env', url: serve('/a', 'x'), size: 1 },
      { id: '2', name: '...', url: serve('/b', 'x'), size: 1 },
      { id: '3', name: 'notes.txt', url: serve('/c', 'one'), size: 3 },
      { id: '4', name: 'notes.txt', url: serve('/d', 'two'), size: 3 },
      { id: '5', name: '.bashrc', url: serve('/e', 'three'), size: 5 },
    ]);
    expect(result.refused.map((r) => [r.name, r.reason])).toEqual([
      ['../../.env', 'bad_name'],
      ['...', 'bad_name'],
    ]);
    expect(result.saved.map((s) => s.name)).toEqual(['notes.txt', 'notes-2.txt', 'bashrc']);
    expect(readFileSync(result.saved[1]!.path, 'utf8')).toBe('two');
    expect(existsSync(join(dir, '.env'))).toBe(false);
  });

  it('any name is saved inside its folder under a plain, bounded name, or refused', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.string({ unit: 'grapheme', maxLength: 300 }),
          fc.constantFrom('..', '.', ' . ', 'a/b', 'C:\\x', '\u0000x'),
        ),
        (name) => {
          const safe = safeAttachmentName(name);
          if (safe === undefined) return;
          expect(safe.length).toBeLessThanOrEqual(MAX_NAME);
          expect(safe).toMatch(/^[A-Za-z0-9_+()-][A-Za-z0-9._+() -]*$/);
          expect(relative('/w/a', join('/w/a', safe)).startsWith('..')).toBe(false);
          const again = uniqueName(safe, new Set([safe]));
          expect(again).not.toBe(safe);
          expect(again.length).toBeLessThanOrEqual(MAX_NAME);
        },
      ),
    );
  });

  it('media types come from Discord without parameters, else from the extension', () => {
    expect(mediaType('a.txt', 'text/plain; charset=utf-8')).toBe('text/plain');
    expect(mediaType('a.PNG', undefined)).toBe('image/png');
    expect(mediaType('a.weird', null)).toBe('application/octet-stream');
    expect(mediaType('a.png', 'not a type')).toBe('image/png');
  });
});
