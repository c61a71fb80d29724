/** Wallet state storage: the shared contract, the text codec, and the file store's crash and damage handling. */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeCrypto } from '@duet/protocol/node';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  decodeWalletState,
  encodeWalletState,
  FileWalletStore,
  MemoryWalletStore,
  openFileWallet,
  STATE_FORMAT,
  type WalletState,
  walletFiles,
} from '../src/node.js';
import { makePlatform, TestClock, walletErrorCode } from './fixture.js';
import { walletStoreContract } from './store.contract.js';

const crypto = nodeCrypto();
const sha256 = crypto.sha256;
const dirs: string[] = [];
async function freshDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'duet-wallet-store-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

walletStoreContract('MemoryWalletStore', async () => new MemoryWalletStore());
walletStoreContract('FileWalletStore', async () => new FileWalletStore(join(await freshDir(), 'wallet-state.json')));

async function stateWithCredential(): Promise<WalletState> {
  const platform = await makePlatform();
  const device = await crypto.suite('p256').generate();
  const c = await platform.issue(device);
  return {
    version: 1,
    device: { suite: 'p256', publicKey: device.publicKey },
    reservedThrough: 1234,
    credentials: [{ bytes: c.bytes, firstCounter: 7 }],
  };
}

describe('state text codec', () => {
  it('round-trips and names its format and checksum', async () => {
    const s = await stateWithCredential();
    const text = encodeWalletState(s, sha256);
    const outer = JSON.parse(text) as { format: string; sha256: string };
    expect(outer.format).toBe(STATE_FORMAT);
    expect(outer.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(decodeWalletState(text, sha256)).toEqual(s);
  });

  it('detects a changed counter even in well-formed JSON (checksum)', async () => {
    const text = encodeWalletState(await stateWithCredential(), sha256);
    const edited = text.replace('"reservedThrough":1234', '"reservedThrough":12');
    expect(edited).not.toBe(text);
    expect(await walletErrorCode(() => decodeWalletState(edited, sha256))).toBe('store_corrupt');
  });

  it('detects every single-character truncation (a torn write)', async () => {
    const text = encodeWalletState(await stateWithCredential(), sha256);
    for (let n = 0; n < text.length; n++) {
      expect(await walletErrorCode(() => decodeWalletState(text.slice(0, n), sha256))).toBe('store_corrupt');
    }
  });
});

describe('FileWalletStore on disk', () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await freshDir();
    path = join(dir, 'wallet-state.json');
  });

  it('writes mode 0600 and leaves no temporary file', async () => {
    await new FileWalletStore(path).save(await stateWithCredential());
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    await expect(stat(`${path}.tmp`)).rejects.toThrow(/ENOENT/);
  });

  it('ignores and overwrites a temporary file a crash left behind', async () => {
    const store = new FileWalletStore(path);
    const s = await stateWithCredential();
    await store.save(s);
    await writeFile(`${path}.tmp`, '{"format":"duet-wallet-state/v1","sha');
    expect(await store.load()).toEqual(s);
    await store.save({ ...s, reservedThrough: 2000 });
    expect((await store.load())?.reservedThrough).toBe(2000);
  });

  const damages: ReadonlyArray<readonly [string, (t: string) => string | Uint8Array]> = [
    ['an empty file', () => ''],
    ['a torn file (half written)', (t) => t.slice(0, Math.floor(t.length / 2))],
    ['one flipped digit', (t) => t.replace('"reservedThrough":1234', '"reservedThrough":1235')],
    ['a missing checksum', (t) => t.replace(/"sha256":"[0-9a-f]+",/, '')],
    ['another format', (t) => t.replace(STATE_FORMAT, 'duet-wallet-state/v2')],
    ['garbage', () => 'PK\u0003\u0004 definitely not a wallet'],
    ['bytes that are not UTF-8', () => new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])],
    ['an oversized file', (t) => t + ' '.repeat(20_000)],
  ];

  it.each(damages)('reports %s as store_corrupt, and Wallet.open refuses without touching it', async (_what, damage) => {
    const s = await stateWithCredential();
    await new FileWalletStore(path).save(s);
    const damaged = damage(await readFile(path, 'utf8'));
    await writeFile(path, damaged);
    expect(await walletErrorCode(new FileWalletStore(path).load())).toBe('store_corrupt');
    // The wallet must never treat damage as "no state": that would restart the counter.
    const clock = new TestClock();
    expect(await walletErrorCode(openFileWallet({ crypto, clock, dir }))).toBe('store_corrupt');
    expect(new Uint8Array(await readFile(path))).toEqual(typeof damaged === 'string' ? new TextEncoder().encode(damaged) : damaged);
  });

  it('a wallet folder holds the key and the state; the state survives reopening', async () => {
    const clock = new TestClock();
    const w = await openFileWallet({ crypto, clock, dir });
    await w.close();
    const files = walletFiles(dir, crypto);
    const state = await files.store.load();
    expect(state?.device?.publicKey).toEqual(w.publicKey);
    expect((await files.vault.load())?.publicKey).toEqual(w.publicKey);
  });
});
