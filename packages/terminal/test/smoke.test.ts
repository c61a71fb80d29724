import { describe, expect, it } from 'vitest';
import { makeWorld, payer, readyTerminal, TestClock } from './fixture.js';

describe('smoke', () => {
  it('pays', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const t = await readyTerminal(w, clock);
    const p = await payer(w);
    const d = await t.pay(1250, await p.text(clock.s));
    expect(d).toMatchObject({ accepted: true, path: 'offline', sequence: 1 });
    const again = await t.pay(1250, await p.text(clock.s));
    expect(again.accepted).toBe(true);
  });
});
