/** Device keys: made per suite (P-256 by default), never extractable through the Signer, kept safely on disk. */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PUBLIC_KEY_BYTES, SUITES } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FileKeyVault,
  type KeyVault,
  MemoryKeyVault,
  MemoryWalletStore,
  signDeviceProof,
  verifyDeviceProof,
  Wallet,
  walletFiles,
} from '../src/node.js';
import { TestClock, walletErrorCode } from './fixture.js';

const crypto = nodeCrypto();
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'duet-wallet-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const vaults: ReadonlyArray<readonly [string, () => KeyVault]> = [
  ['MemoryKeyVault', () => new MemoryKeyVault(crypto)],
  ['FileKeyVault', () => new FileKeyVault(join(dir, 'device-key.json'), crypto)],
];

const challenge = new Uint8Array(32).fill(7);

describe.each(vaults)('%s (shared contract)', (_name, makeVault) => {
  it.each(SUITES)('creates a %s key that signs, survives a reload and is not extractable', async (suite) => {
    const vault = makeVault();
    expect(await vault.load()).toBeUndefined();
    const key = await vault.create(suite);
    expect(key.suite).toBe(suite);
    expect(key.publicKey).toHaveLength(PUBLIC_KEY_BYTES[suite]);
    expect(await key.exportPrivateKey()).toBeUndefined();
    const again = await vault.load();
    expect(again?.publicKey).toEqual(key.publicKey);
    expect(await again?.exportPrivateKey()).toBeUndefined();
    // The reloaded key is the same private key: its proof verifies under the first public key.
    const sig = await again?.sign(new Uint8Array([1]));
    expect(sig).toHaveLength(64);
    const proof = await signDeviceProof(again ?? key, challenge);
    expect(await verifyDeviceProof(crypto, suite, key.publicKey, challenge, proof)).toBe(true);
  });

  it('never replaces a key: create on a full vault is key_exists and the old key stays', async () => {
    const vault = makeVault();
    const key = await vault.create('p256');
    expect(await walletErrorCode(vault.create('p256'))).toBe('key_exists');
    expect((await vault.load())?.publicKey).toEqual(key.publicKey);
  });

  it('destroy forgets the key; a new one can then be made', async () => {
    const vault = makeVault();
    const old = await vault.create('p256');
    await vault.destroy();
    expect(await vault.load()).toBeUndefined();
    await vault.destroy(); // idempotent
    const fresh = await vault.create('p256');
    expect(fresh.publicKey).not.toEqual(old.publicKey);
  });
});

describe('Wallet key generation', () => {
  it('makes a P-256 device key by default, and the suite asked for otherwise', async () => {
    const clock = new TestClock();
    const w = await Wallet.open({ crypto, clock, vault: new MemoryKeyVault(crypto), store: new MemoryWalletStore() });
    expect(w.suite).toBe('p256');
    for (const suite of ['ed25519', 'sm2'] as const) {
      const other = await Wallet.open({ crypto, clock, vault: new MemoryKeyVault(crypto), store: new MemoryWalletStore(), suite });
      expect(other.suite).toBe(suite);
      expect(other.status().device.suite).toBe(suite);
    }
  });

  it('keeps the key it has: reopening with another suite changes nothing', async () => {
    const clock = new TestClock();
    const files = walletFiles(dir, crypto);
    const w1 = await Wallet.open({ crypto, clock, ...files });
    await w1.close();
    const w2 = await Wallet.open({ crypto, clock, ...files, suite: 'ed25519' });
    expect(w2.suite).toBe('p256');
    expect(w2.publicKey).toEqual(w1.publicKey);
  });
});

describe('FileKeyVault on disk', () => {
  const path = () => join(dir, 'device-key.json');

  it('writes the key file with mode 0600 and leaves no temporary copy', async () => {
    await new FileKeyVault(path(), crypto).create('p256');
    expect((await stat(path())).mode & 0o777).toBe(0o600);
    await expect(stat(`${path()}.tmp`)).rejects.toThrow(/ENOENT/);
    const text = JSON.parse(await readFile(path(), 'utf8')) as { suite: string; privateKey: string };
    expect(text.suite).toBe('p256');
    expect(text.privateKey).toMatch(/^[0-9a-f]{64}$/); // the raw 32-byte key
  });

  it('removes a temporary key copy left by a crash mid-create when it loads', async () => {
    await new FileKeyVault(path(), crypto).create('p256');
    await writeFile(`${path()}.tmp`, 'half a key');
    await new FileKeyVault(path(), crypto).load();
    await expect(stat(`${path()}.tmp`)).rejects.toThrow(/ENOENT/);
  });

  it.each([
    ['garbage', () => 'not json at all'],
    ['an empty file', () => ''],
    ['a truncated file', (t: string) => t.slice(0, t.length - 20)],
    ['another format', (t: string) => t.replace('duet-device-key/v1', 'duet-device-key/v9')],
    ['an unknown suite', (t: string) => t.replace('"p256"', '"rsa"')],
    [
      'a public key that does not match',
      (t: string) => t.replace(/"publicKey":"0([23])/, (_m, p) => `"publicKey":"0${p === '2' ? '3' : '2'}`),
    ],
    ['a private key that is not a key', (t: string) => t.replace(/"privateKey":"[0-9a-f]{64}"/, `"privateKey":"${'0'.repeat(64)}"`)],
    ['oversized content', (t: string) => t + ' '.repeat(2000)],
  ])('reports %s as key_corrupt', async (_what, damage) => {
    await new FileKeyVault(path(), crypto).create('p256');
    const text = await readFile(path(), 'utf8');
    const damaged = damage(text);
    expect(damaged).not.toBe(text);
    await writeFile(path(), damaged);
    expect(await walletErrorCode(new FileKeyVault(path(), crypto).load())).toBe('key_corrupt');
  });
});
