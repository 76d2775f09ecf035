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
    expect(dockerfile).toMatch(
      /ENTRYPOINT \["\/usr\/bin\/tini", "--", "node", "dist\/src\/cli.js"\]\nCMD \["start"\]/,
    );
    expect(dockerfile).toMatch(/HEALTHCHECK .*\n\s+CMD \["node", "dist\/src\/cli.js", "status"\]/);
    expect(existsSync(join(root, 'dist/src/cli.js'))).toBe(true);
  });

  it('the default target (the last stage) is the bot alone; only the demo target adds the emulator and the fake', () => {
    const stages = dockerfile.split(/^(?=FROM )/m).filter((s) => s.startsWith('FROM'));
    const name = (s: string) => /^FROM \S+ AS (\S+)/.exec(s)?.[1];
    expect(stages.map(name)).toEqual(['build', 'bot', 'demo', 'runtime']);
    expect(stages.at(-1)).toMatch(/^FROM bot AS runtime\n/);
    const bot = stages[1]!;
    expect(bot).not.toMatch(/test\/fixtures|packages\/|python3/);
    expect(stages[2]).toMatch(/COPY test\/fixtures\/fake-kiro/);
    expect(stages[2]).toMatch(/packages\/discord-emulator\/dist/);
    // An extra CA as a build secret, in the build stage (npm ci) and in the image.
    expect(stages[0]).toMatch(/RUN --mount=type=secret,id=extra_ca add-extra-ca/);
    expect(bot).toMatch(/RUN --mount=type=secret,id=extra_ca .*\n(.*\n)* && add-extra-ca/);
  });

  it("compose's mem_limit holds MAX_SESSIONS × MAX_MEMORY_MB plus the bot", () => {
    const compose = readFileSync(join(root, 'docker-compose.yml'), 'utf8');
    const sessions = Number(/MAX_SESSIONS: \$\{MAX_SESSIONS:-(\d+)\}/.exec(compose)?.[1]);
    const perSession = Number(/MAX_MEMORY_MB: \$\{MAX_MEMORY_MB:-(\d+)\}/.exec(compose)?.[1]);
    const limitMb = Number(/mem_limit: \$\{THREADWARDEN_MEM_LIMIT:-(\d+)m\}/.exec(compose)?.[1]);
    expect(sessions).toBeGreaterThan(0);
    // The bot's own share (about 150 MB measured, 512 MB allowed with the growth between monitor ticks).
    expect(limitMb).toBeGreaterThanOrEqual(sessions * perSession + 512);
    const ops = readFileSync(join(root, 'docs/operations.md'), 'utf8');
    expect(ops).toContain(`${sessions} × ${perSession} + 512 = ${sessions * perSession + 512}`);
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
