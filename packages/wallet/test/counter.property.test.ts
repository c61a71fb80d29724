/**
 * Property: whatever the interleaving of codes, concurrent bursts, clean restarts, crashes (even
 * with codes in flight), renewals and clock steps, no counter is ever handed out twice, each
 * process's counters increase, a later process only uses counters above every earlier one, and the
 * stored reservation covers every counter handed out.
 */
import { nodeCrypto } from '@duet/protocol/node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryKeyVault, MemoryWalletStore, Wallet } from '../src/index.js';
import { HOUR_S, makePlatform, ProcessStore, TestClock } from './fixture.js';

const crypto = nodeCrypto();

type Op =
  | { readonly t: 'code' }
  | { readonly t: 'burst'; readonly n: number }
  | { readonly t: 'restart' }
  | { readonly t: 'crash' }
  | { readonly t: 'crashMidBurst'; readonly n: number; readonly ticks: number }
  | { readonly t: 'renew' }
  | { readonly t: 'advance'; readonly s: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ t: 'code' as const }) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 8 }).map((n) => ({ t: 'burst' as const, n })) },
  { weight: 1, arbitrary: fc.constant({ t: 'restart' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'crash' as const }) },
  {
    weight: 2,
    arbitrary: fc
      .record({ n: fc.integer({ min: 1, max: 8 }), ticks: fc.integer({ min: 0, max: 6 }) })
      .map((r) => ({ t: 'crashMidBurst' as const, ...r })),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'renew' as const }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 600 }).map((s) => ({ t: 'advance' as const, s })) },
);

/** Lets pending promise callbacks and I/O-free timers run. */
const tick = () => new Promise<void>((r) => setTimeout(r, 0));

describe('counter never repeats (property)', () => {
  it('holds over any interleaving of codes, bursts, restarts, crashes and renewals', async () => {
    const platform = await makePlatform();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 10 }), fc.array(op, { minLength: 1, maxLength: 40 }), async (block, ops) => {
        const clock = new TestClock();
        const vault = new MemoryKeyVault(crypto);
        const durable = new MemoryWalletStore();
        let handle = new ProcessStore(durable);
        const open = () => Wallet.open({ crypto, clock, vault, store: handle, trust: platform.trust, counterBlock: block });
        let wallet = await open();
        await wallet.installCredential((await platform.issue(wallet)).bytes);
        /** Counters handed out, per process (a process ends at every restart or crash). */
        const byProcess: number[][] = [[]];
        const record = (p: number) => (c: { code: { counter: number } }) => byProcess[p]?.push(c.code.counter);
        const nextProcess = () => byProcess.push([]) - 1;
        let proc = 0;

        for (const o of ops) {
          switch (o.t) {
            case 'code':
              record(proc)(await wallet.nextCode());
              break;
            case 'burst':
              for (const c of await Promise.all(Array.from({ length: o.n }, () => wallet.nextCode()))) record(proc)(c);
              break;
            case 'restart':
              await wallet.close();
              proc = nextProcess();
              wallet = await open();
              break;
            case 'crash':
            case 'crashMidBurst': {
              if (o.t === 'crashMidBurst') {
                // Codes still in flight when the process dies may or may not come out; any that do count.
                const dying = proc;
                for (let i = 0; i < o.n; i++) wallet.nextCode().then(record(dying), () => {});
                for (let i = 0; i < o.ticks; i++) await tick();
              }
              handle.crash();
              handle = new ProcessStore(durable);
              proc = nextProcess();
              wallet = await open();
              break;
            }
            case 'renew':
              clock.advance(1);
              await wallet.installCredential(
                (await platform.issue(wallet, { notBefore: clock.s - 60, notAfter: clock.s + 72 * HOUR_S })).bytes,
              );
              break;
            case 'advance':
              clock.advance(o.s);
              break;
          }
        }
        await tick();
        const all = byProcess.flat();
        expect(new Set(all).size).toBe(all.length);
        let floor = 0;
        for (const counters of byProcess) {
          if (counters.length === 0) continue;
          // In order of arrival within a process, and above every counter of every earlier process.
          for (let i = 1; i < counters.length; i++) expect(counters[i]).toBeGreaterThan(counters[i - 1] as number);
          expect(Math.min(...counters)).toBeGreaterThan(floor);
          floor = Math.max(floor, ...counters);
        }
        const stored = await durable.load();
        expect(stored?.reservedThrough ?? 0).toBeGreaterThanOrEqual(floor);
      }),
      { numRuns: 150 },
    );
  });
});
