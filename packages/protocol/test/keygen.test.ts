/**
 * Key generation must never hang the process. On Node 20, exporting a freshly generated EC key as
 * JWK (what `generate` once did) deadlocks when the garbage collector runs during the export and
 * destroys the key-generation job: the main thread waits on a mutex it already holds. It stalled a
 * simulated lunch rush while 12,000 wallets were being enrolled (docs/decisions.md). The provider now
 * draws keys without a generation job; a child process makes many keys while the heap churns (the
 * old code hung within a few thousand) and must finish.
 *
 * The child runs the built provider (dist/), as `npm test` builds first.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { P256_N } from '../src/ecdsa.js';
import { toHex } from '../src/index.js';
import { nodeCrypto } from '../src/node.js';

const CHILD = join(import.meta.dirname, 'keygen-child.mjs');

describe('node provider key generation', () => {
  it.each([
    ['p256', 20_000],
    ['ed25519', 5_000],
  ])('makes %s keys by the thousand under garbage-collector pressure without hanging', (suite, keys) => {
    const r = spawnSync(process.execPath, [CHILD], {
      env: { ...process.env, SUITE: suite, KEYS: String(keys) },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.error, 'the child hung (killed at the timeout)').toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('done\n');
    expect(r.status).toBe(0);
  });

  it('draws distinct P-256 scalars in [1, n-1] that sign and verify', async () => {
    const p256 = nodeCrypto().suite('p256');
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const signer = await p256.generate();
      const raw = await signer.exportPrivateKey();
      if (raw === undefined) throw new Error('a generated key is extractable by default');
      const d = BigInt(`0x${toHex(raw)}`);
      expect(d >= 1n && d < P256_N).toBe(true);
      seen.add(toHex(raw));
      const m = new TextEncoder().encode(`message ${i}`);
      expect(await p256.verify(signer.publicKey, m, await signer.sign(m))).toBe(true);
    }
    expect(seen.size).toBe(200);
    // Not extractable when asked: the raw scalar stays inside.
    expect(await (await p256.generate({ extractable: false })).exportPrivateKey()).toBeUndefined();
  });
});
