import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/Config.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/Metrics.js';
import type { SessionUsage } from '../monitor/ResourceMonitor.js';
import type { SessionPool } from '../pool/SessionPool.js';
import type { Store } from '../store/Store.js';

export interface HealthBody {
  status: 'ok' | 'unhealthy';
  reason?: string;
  poolSize: number;
  available: number;
  busy: number;
  stuck: number;
  uptime: number;
  limits: { maxCpu: number; maxMemoryMB: number; maxStuckTimeMs: number };
  /** "bwrap" when every agent runs in its own sandbox, "off" when not. */
  sandbox: string;
  /** Why agents run unsandboxed although AGENT_SANDBOX=auto asked for a sandbox. */
  sandboxWarning?: string;
  sessions: {
    sessionId: string;
    threadId: string;
    pid: number | null;
    cpu: number | null;
    memMB: number | null;
    uptime: number;
    state: string;
  }[];
}

export interface HttpServerOptions {
  readonly config: Pick<Config, 'httpHost' | 'httpPort' | 'maxCpuPercent' | 'maxMemoryMb' | 'maxStuckMs'>;
  readonly pool: SessionPool;
  readonly store: Store;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly usage: (threadId: string) => SessionUsage | undefined;
  /** True while the Discord gateway is connected. */
  readonly gatewayConnected: () => boolean;
  readonly now?: () => number;
}

/** GET /health and GET /metrics (CONTRACT.md). Loopback by default; no token and no message content in either. */
export class HttpServer {
  private readonly opts: HttpServerOptions;
  private readonly server: Server;
  private closing: Promise<void> | undefined;

  constructor(options: HttpServerOptions) {
    this.opts = options;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        options.logger.error({ err }, 'http handler failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":"internal error"}');
      });
    });
  }

  async listen(): Promise<{ host: string; port: number }> {
    const { httpHost, httpPort } = this.opts.config;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(httpPort, httpHost, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    this.opts.logger.info({ host: a.address, port: a.port }, 'http listening');
    return { host: a.address, port: a.port };
  }

  /** The health document and whether it is healthy (200) or not (503). */
  health(): HealthBody {
    const { pool, config, store } = this.opts;
    const now = (this.opts.now ?? Date.now)();
    const sessions = pool.list();
    const reasons: string[] = [];
    if (!this.opts.gatewayConnected()) reasons.push('Discord gateway not connected');
    const db = store.health();
    if (!db.ok) reasons.push(db.error);
    const stuck = sessions.filter(
      (s) =>
        s.state === 'busy' && s.pendingPermission === undefined && now - s.lastOutputAt > config.maxStuckMs,
    ).length;
    const body: HealthBody = {
      status: reasons.length === 0 ? 'ok' : 'unhealthy',
      ...(reasons.length > 0 && { reason: reasons.join('; ') }),
      poolSize: sessions.length,
      available: Math.max(0, pool.max - sessions.length),
      busy: sessions.filter((s) => s.state === 'busy').length,
      stuck,
      uptime: Math.round((now - pool.startedAt) / 1000),
      limits: {
        maxCpu: config.maxCpuPercent,
        maxMemoryMB: config.maxMemoryMb,
        maxStuckTimeMs: config.maxStuckMs,
      },
      sandbox: pool.sandbox.mechanism,
      ...(pool.sandbox.warning !== undefined && { sandboxWarning: pool.sandbox.warning }),
      sessions: sessions.map((s) => {
        const u = this.opts.usage(s.threadId);
        return {
          sessionId: s.id,
          threadId: s.threadId,
          pid: s.pid ?? null,
          cpu: u ? Math.round(u.cpu * 10) / 10 : null,
          memMB: u ? Math.round(u.memMb * 10) / 10 : null,
          uptime: Math.round((now - s.startedAt) / 1000),
          state: s.state,
        };
      }),
    };
    return body;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'application/json', allow: 'GET, HEAD' });
      res.end('{"error":"method not allowed"}');
      return;
    }
    if (path === '/health') {
      const body = this.health();
      res.writeHead(body.status === 'ok' ? 200 : 503, {
        'content-type': 'application/json',
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : JSON.stringify(body));
      return;
    }
    if (path === '/metrics') {
      const text = await this.opts.metrics.text();
      res.writeHead(200, { 'content-type': this.opts.metrics.contentType });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not found","routes":["/health","/metrics"]}');
  }

  /** Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
      if (!this.server.listening) resolve();
    });
    return this.closing;
  }
}
