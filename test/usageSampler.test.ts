import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { PidusageSampler } from '../src/monitor/PidusageSampler.js';
import { ProcStatSampler } from '../src/monitor/UsageSampler.js';
import { ProcessTable } from '../src/process/ProcessTable.js';
import { expectAllGone, identify, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

const started: Pid[] = [];
afterEach(async () => {
  await killAll(started);
  started.length = 0;
});

const openFds = () => readdirSync('/proc/self/fd').length;

async function spinner(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
  const pid = child.pid!;
  started.push(...(await waitFor(() => identify([pid])[0] && identify([pid]), 'the spinner')));
  return pid;
}

describe('the pidusage sampler', () => {
  it('reads the same counters as the /proc scan for the pids the scan found', async () => {
    const pid = await spinner();
    const table = new ProcessTable();
    await waitFor(
      () => (table.scan(table.timestamp()).find((p) => p.pid === pid)?.cpuTicks ?? 0) > 20,
      'the spinner to use CPU',
    );
    const procs = table.scan(table.timestamp()).filter((p) => p.pid === pid);
    const [fromPidusage, fromScan] = await Promise.all([
      new PidusageSampler({ maxAgeMs: 5000 }).sample(procs),
      new ProcStatSampler().sample(procs),
    ]);
    const a = fromPidusage.get(pid)!;
    const b = fromScan.get(pid)!;
    // Read a few ms apart from a process spinning on one core.
    expect(Math.abs(a.cpuMs - b.cpuMs)).toBeLessThan(500);
    expect(a.rssBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(Math.abs(a.rssBytes - b.rssBytes)).toBeLessThan(8 * 1024 * 1024);
  });

  it("holds one descriptor per live pid, not one per sample, and closes a gone pid's after its expiry", async () => {
    const pids = [await spinner(), await spinner()];
    const table = new ProcessTable();
    const sampler = new PidusageSampler({ maxAgeMs: 300 });
    const before = openFds();
    const procs = () => table.scan(table.timestamp()).filter((p) => pids.includes(p.pid));
    for (let i = 0; i < 50; i++) await sampler.sample(procs());
    expect(openFds() - before).toBeLessThanOrEqual(2);
    const gone = started.splice(0);
    await killAll(gone);
    await expectAllGone(gone);
    await waitFor(() => openFds() <= before, 'pidusage to close the descriptors of the gone pids', 5000);
    const result = await sampler.sample(procs());
    expect(result.size).toBe(0);
  });
});
