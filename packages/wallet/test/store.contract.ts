/**
 * The contract every WalletStore keeps (hono-style: one suite, run against every implementation).
 * Any new store (IndexedDB, SQLite) must pass it before the wallet may use it.
 */
import { nodeCrypto } from '@duet/protocol/node';
import { describe, expect, it } from 'vitest';
import type { WalletState, WalletStore } from '../src/index.js';
import { makePlatform, walletErrorCode } from './fixture.js';

export function walletStoreContract(name: string, makeStore: () => Promise<WalletStore>): void {
  describe(`${name} (WalletStore contract)`, () => {
    const crypto = nodeCrypto();

    async function sampleState(reservedThrough: number): Promise<WalletState> {
      const platform = await makePlatform();
      const device = await crypto.suite('p256').generate();
      const a = await platform.issue(device);
      const b = await platform.issue(device);
      return {
        version: 1,
        device: { suite: 'p256', publicKey: device.publicKey },
        reservedThrough,
        credentials: [{ bytes: a.bytes, firstCounter: 3 }, { bytes: b.bytes }],
      };
    }

    it('loads undefined before the first save', async () => {
      expect(await (await makeStore()).load()).toBeUndefined();
    });

    it('loads exactly what was saved last', async () => {
      const store = await makeStore();
      const first = await sampleState(64);
      await store.save(first);
      expect(await store.load()).toEqual(first);
      const second = { ...(await sampleState(128)), credentials: [] };
      await store.save(second);
      expect(await store.load()).toEqual(second);
    });

    it('keeps a state without a device key (first start, before the key is made)', async () => {
      const store = await makeStore();
      const s: WalletState = { version: 1, reservedThrough: 0, credentials: [] };
      await store.save(s);
      expect(await store.load()).toEqual(s);
    });

    it('hands out copies: changing what was loaded or saved does not change what is stored', async () => {
      const store = await makeStore();
      const s = await sampleState(10);
      await store.save(s);
      (s.credentials[0]?.bytes as Uint8Array)[0] = 0xff;
      const loaded = await store.load();
      expect(loaded?.credentials[0]?.bytes[0]).not.toBe(0xff);
      (loaded?.credentials[0]?.bytes as Uint8Array)[0] = 0xee;
      expect((await store.load())?.credentials[0]?.bytes[0]).not.toBe(0xee);
    });

    it('refuses to save a state it could not read back', async () => {
      const store = await makeStore();
      const good = await sampleState(5);
      await store.save(good);
      const bad = { ...good, reservedThrough: -1 };
      expect(await walletErrorCode(store.save(bad))).toBe('store_corrupt');
      expect(await store.load()).toEqual(good);
    });
  });
}
