import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyOversized } from '../src/agent/acp/AcpTransport.js';
import { LineGate, type OversizedLine } from '../src/agent/acp/LineGate.js';

type Seen = { kind: 'protocol' | 'other'; line: string } | { kind: 'oversized'; bytes: number };

function run(chunks: string[], cap: number): Seen[] {
  const seen: Seen[] = [];
  const gate = new LineGate(
    {
      protocol: (line) => seen.push({ kind: 'protocol', line }),
      other: (line) => seen.push({ kind: 'other', line }),
      oversized: (l: OversizedLine) => seen.push({ kind: 'oversized', bytes: l.bytes }),
    },
    cap,
  );
  for (const c of chunks) gate.push(c);
  gate.flush();
  return seen;
}

/** Cuts a string at the given fractions (any code-unit boundary a pipe read could produce, after decoding). */
function cut(text: string, points: number[]): string[] {
  const at = [...new Set(points.map((p) => Math.floor(p * text.length)))].sort((a, b) => a - b);
  const out: string[] = [];
  let prev = 0;
  for (const p of at) {
    out.push(text.slice(prev, p));
    prev = p;
  }
  out.push(text.slice(prev));
  return out;
}

const rpcLine = fc
  .record({ id: fc.nat(1000), text: fc.string({ maxLength: 60 }) })
  .map(({ id, text }) => JSON.stringify({ jsonrpc: '2.0', id, result: { text } }));
const junkLine = fc.oneof(
  fc.string({ maxLength: 60 }).filter((s) => !s.includes('\n') && s.trim() !== ''),
  fc.constant('[1,2,3]'),
  fc.constant('{"jsonrpc":"2.0"'),
  fc.constant('{"id":1,"result":{}}'),
);

describe('LineGate', () => {
  it('whatever the chunking, protocol lines pass whole, others go aside, oversized lines are reported once', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            rpcLine,
            junkLine,
            fc.nat(3000).map((n) => 'x'.repeat(200 + n)),
          ),
          { maxLength: 20 },
        ),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 30 }),
        (lines, points) => {
          const cap = 200;
          const text = lines.map((l) => `${l}\n`).join('');
          const seen = run(cut(text, points), cap);
          const expected: Seen[] = lines.flatMap((l): Seen[] => {
            if (Buffer.byteLength(l) > cap) return [{ kind: 'oversized', bytes: Buffer.byteLength(l) }];
            if (l.trim() === '') return [];
            const isRpc = l.startsWith('{"jsonrpc":"2.0","id"') && l.endsWith('}}');
            return [{ kind: isRpc ? 'protocol' : 'other', line: isRpc ? l.trim() : l }];
          });
          expect(seen).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('an unterminated last line (half a frame before an exit) is reported as non-protocol', () => {
    expect(run(['{"jsonrpc":"2.0","method":"x"', ',"params":{'], 1000)).toEqual([
      { kind: 'other', line: '{"jsonrpc":"2.0","method":"x","params":{' },
    ]);
  });

  it('tells an oversized response (id at its end) from a request and a notification', () => {
    const big = 'y'.repeat(1000);
    const pieces = (line: string) => ({
      bytes: line.length,
      head: line.slice(0, 256),
      tail: line.slice(-256),
    });
    expect(classifyOversized(pieces(`{"jsonrpc":"2.0","result":{"t":"${big}"},"id":7}`))).toMatchObject({
      type: 'response',
      id: 7,
    });
    expect(
      classifyOversized(
        pieces(`{"jsonrpc":"2.0","id":3,"method":"session/request_permission","params":{"t":"${big}"}}`),
      ),
    ).toMatchObject({ type: 'request', id: 3, method: 'session/request_permission' });
    expect(
      classifyOversized(pieces(`{"jsonrpc":"2.0","method":"session/update","params":{"t":"${big}"}}`)),
    ).toMatchObject({
      type: 'notification',
      method: 'session/update',
    });
  });
});
