import { parseArgs } from 'node:util';
import type { Config } from '../config/Config.js';
import type { HealthBody } from '../http/HttpServer.js';

/**
 * `threadwarden status [--json]`: reads /health of the running bot. Exit 0 healthy, 1 unhealthy, 2 not running.
 */
export async function status(config: Config, argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false } } });
  const host = config.httpHost === '0.0.0.0' ? '127.0.0.1' : config.httpHost;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.httpPort}/health`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  } catch (err) {
    process.stderr.write(
      `threadwarden is not running (nothing answered at ${url}: ${(err as Error).cause ?? (err as Error).message})\n`,
    );
    return 2;
  }
  let body: HealthBody;
  try {
    body = (await res.json()) as HealthBody;
  } catch {
    process.stderr.write(`${url} answered ${res.status} without a health document: is that threadwarden?\n`);
    return 1;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  } else {
    process.stdout.write(
      `status: ${body.status}${body.reason ? ` (${body.reason})` : ''}\n` +
        `sessions: ${body.poolSize} live, ${body.available} free, ${body.busy} busy, ${body.stuck} stuck; up ${body.uptime}s\n` +
        `limits: CPU ${body.limits.maxCpu}% after ${body.limits.maxStuckTimeMs} ms, memory ${body.limits.maxMemoryMB} MB\n`,
    );
    if (body.sessions.length > 0) {
      const rows = body.sessions.map((s) => [
        s.threadId,
        String(s.pid ?? '-'),
        s.state,
        s.cpu === null ? '-' : `${s.cpu}%`,
        s.memMB === null ? '-' : `${s.memMB} MB`,
        `${s.uptime}s`,
      ]);
      const head = ['thread', 'pid', 'state', 'cpu', 'memory', 'uptime'];
      const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [head, ...rows])
        process.stdout.write(
          `${r
            .map((c, i) => c.padEnd(width[i]!))
            .join('  ')
            .trimEnd()}\n`,
        );
    }
  }
  return res.status === 200 && body.status === 'ok' ? 0 : 1;
}
