#!/usr/bin/env node
// `npm run test:container`: builds the image from the project's Dockerfile the way ../shared/container.md
// describes (locally bootstrapped base images, the host's CA as the Dockerfile's extra_ca build secret, podman
// with vfs storage and chroot isolation, runc), then runs it and checks it as an operator would. Every check
// prints what it saw; any failure exits 1. Containers, volumes and the images of this run are removed at the end.
//
// The emulator runs here, on the host's loopback; the bot runs in the default image (`start`, its default
// command) with --network host. The fake kiro-cli is mounted read-only into it, the way an operator mounts
// the real kiro-cli (docker-compose.yml): the check exercises the exact image operators run, not the demo one.
//
// Environment: TW_CONTAINER_CACHE (base rootfs cache, default /var/tmp/threadwarden-container),
// TW_CONTAINER_KEEP=1 keeps containers and images for a post-mortem.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const emulatorDist = join(root, 'packages/discord-emulator/dist/index.js');
const procfsDist = join(root, 'dist/src/process/procfs.js');
if (!existsSync(emulatorDist) || !existsSync(procfsDist)) {
  console.error(
    'test:container: run `npm run build` first (the check drives the emulator package from its dist/)',
  );
  process.exit(2);
}
const { DiscordEmulator } = await import(emulatorDist);
const { scanProcesses, readMarker } = await import(procfsDist);

const run = randomBytes(4).toString('hex');
// TW_CONTAINER_IMAGES="bot-image demo-image" checks images built earlier (no base, no build, no removal).
const given = process.env.TW_CONTAINER_IMAGES?.split(/\s+/).filter(Boolean);
const image = given?.[0] ?? `localhost/threadwarden-check:${run}`;
const demoImage = given?.[1] ?? `localhost/threadwarden-check-demo:${run}`;
// The build stage stays tagged between runs, so an unchanged package-lock.json skips npm ci on a re-run.
const buildCache = 'localhost/threadwarden-check-buildcache:latest';
const volume = `threadwarden-check-${run}`;
const work = mkdtempSync(join(tmpdir(), 'tw-container-'));
const containersConf = join(work, 'containers.conf');
// Root on these machines lacks CAP_SYS_RESOURCE: podman's default rlimits would be refused (container.md).
writeFileSync(containersConf, '[containers]\ndefault_ulimits = []\n');
// Storage: overlay in a store of our own under the cache folder (container.md used vfs in podman's default store;
// vfs copies the whole root filesystem for every layer and container: 59 GB and over 30 minutes for one run on a
// loaded 2-core machine, against a few GB and minutes with overlay). TW_CONTAINER_STORAGE=vfs goes back to the
// recipe as written.
const cacheDir = process.env.TW_CONTAINER_CACHE ?? '/var/tmp/threadwarden-container';
const storage = process.env.TW_CONTAINER_STORAGE ?? 'overlay';
const podmanGlobal = [
  ...(storage === 'vfs'
    ? ['--storage-driver=vfs']
    : [
        '--root',
        join(cacheDir, 'storage'),
        '--runroot',
        join(cacheDir, 'run'),
        `--storage-driver=${storage}`,
      ]),
  '--cgroup-manager=cgroupfs',
  '--events-backend=file',
];
const env = { ...process.env, CONTAINERS_CONF: containersConf };
const containers = new Set();
const failures = [];
const times = {};
const t0 = performance.now();

const log = (line) => console.log(line);
function check(ok, what, saw) {
  log(`${ok ? '  ✔' : '  ✘'} ${what}${saw === undefined ? '' : `: ${saw}`}`);
  if (!ok) failures.push(what);
  return ok;
}
function section(name) {
  log(`\n== ${name} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}
async function timed(name, fn) {
  const t = performance.now();
  try {
    return await fn();
  } finally {
    times[name] = Math.round((performance.now() - t) / 100) / 10;
  }
}

/** podman with the global options; returns { status, stdout, stderr }. */
function podman(args, opts = {}) {
  const r = spawnSync('podman', [...podmanGlobal, ...args], {
    env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: opts.timeout ?? 120_000,
    stdio: opts.inherit ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
  });
  if (opts.must && r.status !== 0) {
    throw new Error(`podman ${args.join(' ')} exited ${r.status}: ${(r.stderr ?? '').trim().slice(-2000)}`);
  }
  return { status: r.status, stdout: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim() };
}

/** podman without blocking this process: the emulator lives in it and must keep answering the bot meanwhile. */
function podmanAsync(args, timeoutMs = 120_000) {
  return new Promise((resolve) => {
    const child = spawn('podman', [...podmanGlobal, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: stdout.trim(), stderr: stderr.trim() });
    });
  });
}

async function waitFor(fn, what, timeoutMs = 30_000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---- processes of a container, seen from the host's /proc ----
const nsOf = (pid) => {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
};
/** The in-container pid (last NSpid field) of a host pid. */
function nsPid(pid) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('NSpid:'));
    return Number(line?.split(/\s+/).pop());
  } catch {
    return undefined;
  }
}
function uidOf(pid) {
  try {
    return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
}
/** Every process in the pid namespace of the container whose init has host pid `initPid`. */
function containerProcesses(initPid) {
  const ns = nsOf(initPid);
  if (!ns) return [];
  return scanProcesses()
    .filter((p) => nsOf(p.pid) === ns)
    .map((p) => ({ ...p, nspid: nsPid(p.pid), marker: readMarker(p.pid), uid: uidOf(p.pid) }));
}
const describeProcs = (ps) =>
  ps
    .map((p) => `${p.nspid}(host ${p.pid}) ppid-host ${p.ppid} ${p.state} ${p.comm} uid ${p.uid}`)
    .join('; ') || '(none)';

function initPidOf(name) {
  return Number(podman(['inspect', '--format', '{{.State.Pid}}', name], { must: true }).stdout);
}

function cleanup() {
  if (process.env.TW_CONTAINER_KEEP === '1') {
    log(`\n(kept: containers ${[...containers].join(' ')}, volume ${volume}, images ${image} ${demoImage})`);
    return;
  }
  for (const c of containers) podman(['rm', '-f', '-t', '0', c]);
  podman(['volume', 'rm', '-f', volume]);
  if (!given) podman(['rmi', '-f', image, demoImage]);
  // Dangling layers of earlier builds from our base (the intermediate images carry its label).
  podman(['image', 'prune', '-f', '--filter', 'label=threadwarden.base']);
  rmSync(work, { recursive: true, force: true });
}

/** The host's locally added CAs (this machine's TLS-inspecting proxy): the Dockerfile's extra_ca secret. */
function hostCaFiles() {
  const caDir = '/usr/local/share/ca-certificates';
  return existsSync(caDir)
    ? readdirSync(caDir)
        .filter((f) => f.endsWith('.crt'))
        .map((f) => join(caDir, f))
    : [];
}

async function buildImages() {
  section('base images (debootstrap stand-ins for node:20-bookworm and -slim, cached by content)');
  await timed('base', () =>
    execFileSync(join(root, 'scripts/container/base.sh'), podmanGlobal, { env, stdio: 'inherit' }),
  );

  section('build both targets from the Dockerfile');
  const caFiles = hostCaFiles();
  const caBundle = join(work, 'extra-ca.pem');
  writeFileSync(caBundle, caFiles.map((f) => readFileSync(f, 'utf8')).join('\n'));
  log(`  extra CA bundle from ${caFiles.length} host file(s): ${caFiles.join(', ') || '(none)'}`);
  const buildArgs = [
    'build',
    '--isolation=chroot',
    '--network=host',
    '--pull=never',
    '--format=docker', // keeps HEALTHCHECK (the OCI format has none)
    '--layers',
    ...(caFiles.length > 0 ? ['--secret', `id=extra_ca,src=${caBundle}`] : []),
    '-f',
    join(root, 'Dockerfile'),
  ];
  await timed('build', () => {
    podman([...buildArgs, '--target', 'build', '-t', buildCache, root], {
      inherit: true,
      must: true,
      timeout: 1_800_000,
    });
    podman([...buildArgs, '-t', image, root], { inherit: true, must: true, timeout: 900_000 });
    podman([...buildArgs, '--target', 'demo', '-t', demoImage, root], {
      inherit: true,
      must: true,
      timeout: 900_000,
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
const emu = new DiscordEmulator({ channelRateLimit: false });
let exitCode = 1;
try {
  if (given) log(`checking the given images ${image} ${demoImage}: no build`);
  else await buildImages();
  const size = (img) =>
    Number(podman(['image', 'inspect', '--format', '{{.Size}}', img], { must: true }).stdout);
  const mb = (n) => `${(n / 1e6).toFixed(0)} MB`;
  const sizes = { bot: size(image), demo: size(demoImage) };
  log(
    `  image sizes: default (bot) ${mb(sizes.bot)} (${sizes.bot} bytes), demo ${mb(sizes.demo)} (${sizes.demo} bytes)`,
  );
  const caFiles = hostCaFiles();
  section('what each image holds');
  const inImage = (img, script) =>
    podman(['run', '--rm', '--network=host', '--runtime=runc', '--entrypoint', '/bin/sh', img, '-c', script]);
  const botHas = inImage(
    image,
    'for p in /app/test /app/packages /app/node_modules/@threadwarden; do [ -e $p ] && echo $p; done; ' +
      'for c in python3 gcc g++ make bwrap tini; do command -v $c; done; id -un',
  ).stdout.split('\n');
  check(
    !botHas.some((l) => /\/app\/(test|packages|node_modules\/@threadwarden)|python3|gcc|make/.test(l)),
    'default image: no test fixtures, no emulator, no python3, no compilers',
    botHas.join(' '),
  );
  check(
    botHas.includes('/usr/bin/bwrap') && botHas.includes('/usr/bin/tini'),
    'default image: bwrap and tini',
  );
  check(botHas.at(-1) === 'threadwarden', 'default image runs as the non-root user', botHas.at(-1));
  const ca = inImage(image, 'ls /usr/local/share/ca-certificates/').stdout.replace(/\n/g, ' ');
  check(
    caFiles.length === 0 || /extra-\d+\.crt/.test(ca),
    'the extra CA is trusted in the image',
    ca || '(none)',
  );
  const demoHas = inImage(
    demoImage,
    'ls /app/test/fixtures/fake-kiro/kiro-cli /app/packages/discord-emulator/dist/index.js',
  );
  check(demoHas.status === 0, 'demo image: the fake and the emulator', demoHas.stdout.replace(/\n/g, ' '));

  section('demo target: `podman run … demo-image` (its default command is `demo`)');
  const demo = await timed('demo', () =>
    podman(['run', '--rm', '--network=host', '--runtime=runc', demoImage], { timeout: 120_000 }),
  );
  const demoLines = demo.stdout.split('\n');
  check(
    demo.status === 0 && demoLines.some((l) => /ended: archived/.test(l)),
    'the demo ran to the end in the container',
    `exit ${demo.status}; ${demoLines.filter((l) => /reaper|ended:|Discord requests/.test(l)).join(' | ')}`,
  );

  // -------------------------------------------------------------------------------------------------------------
  section('the bot (default image, default command) against the emulator on the host loopback');
  await emu.start();
  const alice = emu.createUser('alice');
  const httpPort = await freePort();
  const stopGrace = Number(
    /stop_grace_period: (\d+)s/.exec(readFileSync(join(root, 'docker-compose.yml'), 'utf8'))?.[1],
  );
  const startBot = (name) => {
    containers.add(name);
    podman(
      [
        'run',
        '-d',
        '--name',
        name,
        '--network=host',
        '--runtime=runc',
        '-v',
        `${volume}:/data`,
        '-v',
        `${join(root, 'test/fixtures/fake-kiro')}:/opt/fake-kiro:ro`,
        '-e',
        `DISCORD_TOKEN=${emu.botToken}`,
        '-e',
        `DISCORD_API_BASE=${emu.apiBase}`,
        '-e',
        `DISCORD_GUILD_ID=${emu.guildId}`,
        '-e',
        `ALLOWED_USER_IDS=${alice.id}`,
        '-e',
        'KIRO_CLI_PATH=/opt/fake-kiro/kiro-cli',
        '-e',
        'HTTP_HOST=127.0.0.1', // --network host: the loopback of the host, not every interface
        '-e',
        `HTTP_PORT=${httpPort}`,
        '-e',
        'LOG_LEVEL=info',
        image,
      ],
      { must: true },
    );
    return name;
  };
  const health = async () => {
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/health`, { signal: AbortSignal.timeout(2000) });
      return { code: r.status, body: await r.json() };
    } catch {
      return undefined;
    }
  };
  const healthcheckCmd = JSON.parse(
    podman(['image', 'inspect', '--format', '{{json .Config.Healthcheck.Test}}', image], { must: true })
      .stdout,
  );
  const runHealthcheck = (name, when) => {
    // The image's own HEALTHCHECK command, run in the container the way the engine runs it (CMD form).
    const r = podman(['exec', name, ...healthcheckCmd.slice(1)]);
    check(
      r.status === 0,
      `HEALTHCHECK (${healthcheckCmd.slice(1).join(' ')}) ${when}`,
      `exit ${r.status}: ${r.stdout.split('\n')[0]}`,
    );
  };
  const history = (name) => {
    const r = podman(['exec', name, 'node', 'dist/src/cli.js', 'history', '--json']);
    return r.status === 0 ? JSON.parse(r.stdout) : [];
  };
  /** A mention in #general: the bot opens a thread and answers; resolves when the ✅ is on the message. */
  const converse = async (text) => {
    const m = emu.userSays(emu.defaultChannelId, alice, text, { mentionBot: true });
    const thread = await waitFor(() => emu.threads().find((t) => t.id === m.id), 'the thread', 30_000);
    await waitFor(() => emu.reactions(m.channel_id, m.id).includes('✅'), 'the reply to finish', 60_000);
    return thread;
  };
  const sayInThread = async (threadId, text) => {
    const m = emu.userSays(threadId, alice, text);
    await waitFor(
      () => emu.reactions(threadId, m.id).some((r) => r === '✅' || r === '❌'),
      `"${text}" answered`,
      60_000,
    );
    return emu.channelMessages(threadId).filter((x) => x.author.bot && BigInt(x.id) > BigInt(m.id));
  };

  const bot1 = startBot(`threadwarden-check-${run}-a`);
  const ready = await timed('bot_ready', () =>
    waitFor(
      async () => {
        const h = await health();
        return h?.code === 200 ? h : undefined;
      },
      'the bot /health to answer 200',
      60_000,
    ).catch((err) => {
      log(podman(['logs', '--tail', '30', bot1]).stderr);
      throw err;
    }),
  );
  log(`  /health: ${JSON.stringify(ready.body).slice(0, 400)}`);
  runHealthcheck(bot1, 'at start');

  const init1 = initPidOf(bot1);
  const procs = containerProcesses(init1);
  const pid1 = procs.find((p) => p.nspid === 1);
  check(/tini/.test(pid1?.comm ?? ''), 'PID 1 in the container is tini', describeProcs(procs));
  const botNode = procs.find((p) => p.comm === 'node' && p.ppid === init1);
  check(botNode?.uid === 10001, 'the bot runs as the non-root user (uid 10001)', `uid ${botNode?.uid}`);

  // A conversation in a thread.
  const conv = await timed('conversation', async () => {
    const thread = await converse('hello from the container check');
    const replies = emu.channelMessages(thread.id).filter((m) => m.author.bot);
    check(
      replies.length > 0,
      'a mention opens a thread and the agent answers in it',
      replies.map((m) => m.content.slice(0, 60)).join(' | '),
    );
    const second = await sayInThread(thread.id, 'fake:history');
    check(
      second.some((m) => m.content.includes('hello from the container check')),
      'the second message reaches the same agent (it remembers the first)',
      second.map((m) => m.content.replace(/\s+/g, ' ').slice(0, 80)).join(' | '),
    );
    return thread;
  });
  runHealthcheck(bot1, 'with a live session');

  // An orphan on purpose: the fake's double fork leaves a sleeper whose parent has exited.
  const spawned = await sayInThread(conv.id, 'fake:spawn doublefork');
  const orphanNsPid = Number(/spawned doublefork (\d+)/.exec(spawned.map((m) => m.content).join('\n'))?.[1]);
  const orphan = containerProcesses(init1).find((p) => p.nspid === orphanNsPid);
  check(
    orphan !== undefined && orphan.ppid === init1,
    "the fake's double-forked sleeper is reparented to tini (PID 1)",
    orphan
      ? `pid ${orphan.nspid}, parent host pid ${orphan.ppid} (tini is ${init1})`
      : `no pid ${orphanNsPid}`,
  );

  // /pool-status.
  const status = emu.runCommand(conv.id, alice, 'pool-status');
  const embed = await waitFor(() => status.original()?.embeds?.[0], 'the /pool-status reply', 15_000);
  const statusText = [
    embed.title,
    embed.description,
    ...(embed.fields ?? []).map((f) => `${f.name}: ${f.value}`),
  ]
    .filter(Boolean)
    .join(' / ')
    .replace(/\s+/g, ' ');
  check(/1/.test(statusText), '/pool-status answers with the live session', statusText.slice(0, 300));

  // Archive: every pid of the tree gone, the orphan's zombie reaped by tini.
  const tree = containerProcesses(init1).filter((p) => p.marker);
  log(`  agent tree before archive: ${describeProcs(tree)}`);
  const ta = performance.now();
  emu.archiveThread(conv.id);
  await waitFor(
    () =>
      containerProcesses(init1).filter((p) =>
        tree.some((t) => t.pid === p.pid && t.startTime === p.startTime),
      ).length === 0,
    'every process of the tree to be gone (zombies included)',
    10_000,
    20,
  ).catch(() => undefined);
  const left = containerProcesses(init1).filter((p) =>
    tree.some((t) => t.pid === p.pid && t.startTime === p.startTime),
  );
  check(
    tree.length >= 3 && left.length === 0,
    `archive ends every pid of the tree (${tree.length}), zombies reaped`,
    `left after ${Math.round(performance.now() - ta)} ms: ${describeProcs(left)}`,
  );
  const zombies = containerProcesses(init1).filter((p) => p.state === 'Z');
  check(zombies.length === 0, 'no zombie in the container', describeProcs(zombies));
  const rowsArchived = history(bot1);
  check(
    rowsArchived.some((r) => r.threadId === conv.id && r.endReason === 'archived'),
    'history: the archived session',
    rowsArchived.map((r) => `${r.threadId}:${r.endReason}`).join(' '),
  );
  runHealthcheck(bot1, 'after the archive');

  // Sandbox.
  section('sandbox (bubblewrap) inside the container');
  const h2 = await health();
  const sandboxInfo = h2?.body?.sandbox;
  // The smallest sandbox the bot's start-up probe also needs: new namespaces, a read-only root, a fresh /proc.
  const bwrapProbe = [
    '--unshare-all',
    '--die-with-parent',
    '--ro-bind',
    '/',
    '/',
    '--dev',
    '/dev',
    '--proc',
    '/proc',
    'true',
  ];
  const probe = podman(['exec', bot1, 'bwrap', ...bwrapProbe]);
  log(`  bwrap probe in the container as the bot's user: exit ${probe.status} ${probe.stderr}`);
  // What a container needs for bwrap: user namespaces pass podman's default seccomp profile; mounting a fresh /proc
  // is refused while podman masks paths under /proc (a locked mount), so try again with them unmasked.
  const unmasked = podman([
    'run',
    '--rm',
    '--network=host',
    '--runtime=runc',
    '--security-opt',
    'unmask=/proc/*',
    '--entrypoint',
    'bwrap',
    image,
    ...bwrapProbe,
  ]);
  log(
    `  the same probe with --security-opt unmask=/proc/*: exit ${unmasked.status} ${unmasked.stderr
      .split('\n')
      .filter((l) => !l.includes('level='))
      .join(' ')}`,
  );
  if (sandboxInfo === undefined) {
    log('  /health has no sandbox field: this build of the bot has no sandbox yet');
  } else {
    const why = h2?.body?.sandboxWarning;
    check(
      sandboxInfo === 'on' || (typeof why === 'string' && why.length > 0),
      'the sandbox works, or /health says it is off and why',
      `sandbox ${JSON.stringify(sandboxInfo)}${why ? `: ${why}` : ''}`,
    );
  }

  // SIGTERM: podman stop ends the bot within stop_grace_period, every live session "shutdown".
  section(`podman stop (SIGTERM) within stop_grace_period (${stopGrace} s)`);
  const live = [await converse('first of two live sessions'), await converse('second of two live sessions')];
  const ts = performance.now();
  const stop = await podmanAsync(['stop', '-t', String(stopGrace), bot1], (stopGrace + 30) * 1000);
  const stopMs = Math.round(performance.now() - ts);
  times.stop = stopMs / 1000;
  const exitCodeBot = podman(['inspect', '--format', '{{.State.ExitCode}}', bot1]).stdout;
  check(
    stop.status === 0 && stopMs < stopGrace * 1000 && exitCodeBot === '0',
    'podman stop: the bot exits 0 before the grace period',
    `${stopMs} ms, exit ${exitCodeBot}`,
  );
  const showLogs = () => {
    const logs = podman(['logs', '--tail', '25', bot1]);
    log(`  last log lines of the stopped bot:\n${logs.stdout}\n${logs.stderr}`);
  };
  if (stop.status !== 0 || exitCodeBot !== '0') showLogs();
  const afterStop = podman([
    'run',
    '--rm',
    '--runtime=runc',
    '-v',
    `${volume}:/data`,
    image,
    'history',
    '--json',
  ]);
  const stopRows = afterStop.status === 0 ? JSON.parse(afterStop.stdout) : [];
  const liveRows = stopRows.filter((r) => live.some((t) => t.id === r.threadId));
  check(
    liveRows.length === 2 && liveRows.every((r) => r.endReason === 'shutdown'),
    'every live session row is "shutdown"',
    liveRows.map((r) => `${r.threadId}:${r.endReason}`).join(' '),
  ) || showLogs();

  // SIGKILL: podman kill, then a restart on the same volume keeps the history and closes what was left.
  section('podman kill (SIGKILL), then a restart on the same volume');
  const bot2 = startBot(`threadwarden-check-${run}-b`);
  await waitFor(async () => (await health())?.code === 200, 'the second bot', 60_000);
  const killed = [await converse('session the SIGKILL will orphan')];
  const init2 = initPidOf(bot2);
  const tree2 = containerProcesses(init2).filter((p) => p.marker);
  await podmanAsync(['kill', '-s', 'KILL', bot2]);
  await waitFor(
    () => podman(['inspect', '--format', '{{.State.Running}}', bot2]).stdout === 'false',
    'the killed container to stop',
    20_000,
  );
  const survivors = tree2.filter((t) =>
    scanProcesses().some((p) => p.pid === t.pid && p.startTime === t.startTime),
  );
  check(
    survivors.length === 0,
    'SIGKILL of the container: no agent process outlives its pid namespace',
    `${tree2.length} before, left: ${describeProcs(survivors)}`,
  );
  const bot3 = startBot(`threadwarden-check-${run}-c`);
  const h3 = await waitFor(
    async () => {
      const h = await health();
      return h?.code === 200 ? h : undefined;
    },
    'the restarted bot',
    60_000,
  );
  const restartRows = history(bot3);
  const killedRows = restartRows.filter((r) => killed.some((t) => t.id === r.threadId));
  check(
    killedRows.length === 1 && killedRows.every((r) => r.endReason === 'bot_restart'),
    'the restarted bot closed the killed bot\'s session as "bot_restart" before taking work',
    `${killedRows.map((r) => `${r.threadId}:${r.endReason}`).join(' ')} (health poolSize ${h3.body.poolSize})`,
  );
  check(
    restartRows.some((r) => r.endReason === 'archived') &&
      restartRows.filter((r) => r.endReason === 'shutdown').length >= 2,
    'the history of the earlier containers is still there',
    `${restartRows.length} rows: ${[...new Set(restartRows.map((r) => r.endReason))].join(', ')}`,
  );
  const after = await converse('new work after the restart');
  const afterRows = history(bot3);
  const newRow = afterRows.find((r) => r.threadId === after.id);
  check(
    newRow !== undefined && newRow.startedAt > Math.max(...killedRows.map((r) => r.endedAt)),
    'new work starts after the reaping',
    `new session started ${newRow ? new Date(newRow.startedAt).toISOString() : '-'}`,
  );
  runHealthcheck(bot3, 'after the restart');
  const stop3 = await podmanAsync(['stop', '-t', String(stopGrace), bot3], (stopGrace + 30) * 1000);
  check(stop3.status === 0, 'the restarted bot stops cleanly');

  section('compose file');
  // podman-compose 1.0.3 (Debian 12) has no `config`; its --dry-run parses the file, resolves ${VAR:-default}
  // and prints the podman commands it would run, which is the same check.
  const compose = spawnSync(
    'podman-compose',
    ['-f', join(root, 'docker-compose.yml'), '--dry-run', 'up', '--no-build'],
    {
      encoding: 'utf8',
      cwd: root,
      env: { ...env, PODMAN_COMPOSE_PROVIDER: '' },
    },
  );
  if (compose.error) log(`  podman-compose not runnable here: ${compose.error.message}`);
  else {
    const memLimit = / -m (\S+)| --memory[= ](\S+)/.exec(compose.stdout)?.slice(1).find(Boolean);
    check(
      compose.status === 0 && memLimit !== undefined,
      'podman-compose reads the compose file (--dry-run up)',
      `mem_limit ${memLimit}; exit ${compose.status} ${compose.stderr.trim().split('\n').at(-1) ?? ''}`,
    );
  }
  exitCode = failures.length === 0 ? 0 : 1;
  log(`\nsizes: default ${mb(sizes.bot)}, demo ${mb(sizes.demo)}`);
} catch (err) {
  log(`\n✘ ${err instanceof Error ? err.message : String(err)}`);
  for (const c of containers) {
    const logs = podman(['logs', '--tail', '40', c]);
    if (logs.stdout || logs.stderr) log(`--- last log lines of ${c}:\n${logs.stdout}\n${logs.stderr}`);
  }
  exitCode = 1;
} finally {
  await emu.stop();
  cleanup();
}
times.total = Math.round((performance.now() - t0) / 100) / 10;
log(`\ntimes (s): ${JSON.stringify(times)}`);
log(
  failures.length === 0 && exitCode === 0
    ? 'test:container: all checks passed'
    : `test:container: FAILED ${failures.join('; ')}`,
);
process.exit(exitCode);
