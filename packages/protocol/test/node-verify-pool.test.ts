/** nodeCrypto({ verifyOn: 'pool' }) must verify exactly as the default event-loop mode does. */
import { describe, expect, it } from 'vitest';
import { nodeCrypto } from '../src/node.js';

const loop = nodeCrypto();
const pool = nodeCrypto({ verifyOn: 'pool' });

describe.each(['p256', 'ed25519'] as const)('%s verified on the thread pool', (suite) => {
  it('accepts what the loop accepts and refuses what it refuses', async () => {
    const signer = await loop.suite(suite).generate();
    const message = loop.randomBytes(300);
    const sig = await signer.sign(message);
    const flipped = sig.slice();
    flipped[10] = (flipped[10] ?? 0) ^ 1;
    const other = await loop.suite(suite).generate();
    for (const [pub, msg, s, expected] of [
      [signer.publicKey, message, sig, true],
      [signer.publicKey, message, flipped, false],
      [other.publicKey, message, sig, false],
      [signer.publicKey, message.subarray(1), sig, false],
      [signer.publicKey, message, sig.subarray(0, 63), false],
    ] as const) {
      expect(await loop.suite(suite).verify(pub, msg, s)).toBe(expected);
      expect(await pool.suite(suite).verify(pub, msg, s)).toBe(expected);
    }
  });
});
