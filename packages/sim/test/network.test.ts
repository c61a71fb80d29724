import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Injectable, NetworkDown, SimNetwork } from '../src/network.js';
import { sfc32 } from '../src/random.js';

/** A platform that counts deliveries and answers 200. */
function counter(): Injectable & { delivered: number } {
  const app = {
    delivered: 0,
    async inject() {
      app.delivered++;
      return { statusCode: 200, headers: { 'content-type': 'application/json' }, rawPayload: Buffer.from('{"ok":true}') };
    },
  };
  return app;
}

const NO_FAULTS = { loss: 0, duplicate: 0, reorder: 0, delayMs: 0 };

function net(faults = NO_FAULTS, seed = 1) {
  const app = counter();
  const late: (() => Promise<void>)[] = [];
  const n = new SimNetwork(faults, sfc32(seed), (_ms, run) => void late.push(run));
  n.attach(app);
  return { app, n, late };
}

describe('SimNetwork: the seeded fault model between terminals and the platform', () => {
  it('delivers once and answers when faults are off', async () => {
    const { app, n } = net();
    const res = await n.fetchFor(1)('http://p/v1/x', { method: 'POST', body: new Uint8Array([1]) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect(app.delivered).toBe(1);
  });

  it('an outage or a partition stops calls before delivery; the operator link (0) is never cut; heal ends both', async () => {
    const { app, n } = net();
    n.setOutage(true);
    await expect(n.fetchFor(1)('http://p/a')).rejects.toBeInstanceOf(NetworkDown);
    await n.fetchFor(0)('http://p/a');
    n.setOutage(false);
    n.partition(2, true);
    await expect(n.fetchFor(2)('http://p/a')).rejects.toBeInstanceOf(NetworkDown);
    await n.fetchFor(3)('http://p/a');
    n.heal();
    await n.fetchFor(2)('http://p/a');
    expect(app.delivered).toBe(3);
    expect(n.stats.blocked).toBe(2);
  });

  it('loss, duplication and reordering account for every delivery', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.record({
          loss: fc.double({ min: 0, max: 1, noNaN: true }),
          duplicate: fc.double({ min: 0, max: 1, noNaN: true }),
          reorder: fc.double({ min: 0, max: 1, noNaN: true }),
        }),
        async (seed, f) => {
          const { app, n, late } = net({ ...f, delayMs: 0 }, seed);
          let answered = 0;
          for (let i = 0; i < 30; i++) {
            try {
              await n.fetchFor(1)('http://p/a');
              answered++;
            } catch (e) {
              expect(e).toBeInstanceOf(NetworkDown);
            }
          }
          for (const run of late) await run();
          const s = n.stats;
          expect(answered + s.lostBefore + s.lostAfter).toBe(30);
          expect(app.delivered).toBe(30 - s.lostBefore + s.duplicated + s.reordered);
          expect(late.length).toBe(s.reordered);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('a delay beyond the caller budget is a timeout with the request delivered', async () => {
    const { app, n } = net({ ...NO_FAULTS, delayMs: 10_000 }, 5);
    let timedOut = 0;
    for (let i = 0; i < 50; i++)
      await n
        .fetchFor(
          1,
          () => 300,
        )('http://p/a')
        .catch(() => timedOut++);
    expect(timedOut).toBe(n.stats.timedOut);
    expect(timedOut).toBeGreaterThan(40);
    expect(app.delivered).toBe(50);
  });

  it('the same seed gives the same faults', async () => {
    const run = async () => {
      const { n } = net({ loss: 0.3, duplicate: 0.3, reorder: 0.3, delayMs: 0 }, 99);
      const out: string[] = [];
      for (let i = 0; i < 40; i++)
        out.push(
          await n
            .fetchFor(1)('http://p/a')
            .then(
              () => 'ok',
              (e: Error) => e.message,
            ),
        );
      return out;
    };
    expect(await run()).toEqual(await run());
  });
});
