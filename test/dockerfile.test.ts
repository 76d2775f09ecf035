import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

// No Docker engine runs on our build machines: this checks what can be checked without one.
describe('Dockerfile and docker-compose.yml', () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');

  it('copies only paths that exist in the repository', () => {
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
      m[1]!.trim().split(/\s+/),
    );
    expect(sources.length).toBeGreaterThan(4);
    for (const s of sources) expect(existsSync(join(root, s)), s).toBe(true);
  });

  it('runs as a non-root user under tini, with a health check through the CLI', () => {
    expect(dockerfile).toMatch(/^USER threadwarden$/m);
    expect(dockerfile).toMatch(/ENTRYPOINT \["\/usr\/bin\/tini", "--"\]/);
    expect(dockerfile).toMatch(/HEALTHCHECK .*\n\s+CMD \["node", "dist\/src\/cli.js", "status"\]/);
    expect(existsSync(join(root, 'dist/src/cli.js'))).toBe(true);
  });

  it('compose publishes HTTP on loopback only and waits longer than the shutdown deadline', () => {
    const compose = readFileSync(join(root, 'docker-compose.yml'), 'utf8');
    expect(compose).toContain('"127.0.0.1:8082:8082"');
    expect(compose).toMatch(/env_file: \.env/);
    expect(compose).toMatch(/init: true/);
    const grace = Number(/stop_grace_period: (\d+)s/.exec(compose)?.[1]);
    expect(grace * 1000).toBeGreaterThan(1500 + 5000);
  });
});
