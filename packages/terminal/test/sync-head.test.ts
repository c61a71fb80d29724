/**
 * syncLists reports the journal head (`head=`), so the platform's console can tell how many records
 * a terminal holds that have not reached the platform yet.
 */
import { PlatformClient } from '@duet/protocol/client';
import { describe, expect, it } from 'vitest';
import { syncLists } from '../src/platform.js';
import { makeWorld, payer, readyTerminal, TestClock } from './fixture.js';

describe('syncLists', () => {
  it('sends the journal head sequence with the lists request', async () => {
    const w = await makeWorld();
    const clock = new TestClock();
    const t = await readyTerminal(w, clock);
    const paths: string[] = [];
    const client = new (class extends PlatformClient {
      override async call(method: string, path: string): Promise<unknown> {
        paths.push(`${method} ${path}`);
        return {
          trustList: Buffer.from(w.trust.bytes).toString('base64'),
          deny: { version: t.state.snapshot.deny.version, kind: 'none', lists: [] },
          policy: null,
          terminal: { id: 101, status: 'active' },
        };
      }
    })('http://127.0.0.1:1', w.crypto, () => clock.s);
    await syncLists(t, client, clock.s);
    const p = await payer(w);
    expect((await t.pay(300, await p.text(clock.s))).accepted).toBe(true);
    clock.advance(1);
    expect((await t.pay(200, await p.text(clock.s))).accepted).toBe(true);
    await syncLists(t, client, clock.s);
    expect(paths).toHaveLength(2);
    expect(paths[0]).toMatch(/^GET \/v1\/terminal\/lists\?deny=\d+&policy=\d+&head=0$/);
    expect(paths[1]).toMatch(/&head=2$/);
  });
});
