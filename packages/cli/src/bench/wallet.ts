/**
 * Wallet benchmark (issue 3): code generation latency with the real file-backed wallet (counters
 * reserved durably in blocks, so about one code in 32 waits for a background fsync), and in the same
 * run its floor: one device signature.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeCrypto } from '@duet/protocol/node';
import { openFileWallet } from '@duet/wallet/node';
import { issueCredential, makeWorld } from '../world.js';
import { latency } from './measure.js';

export interface WalletFigures {
  code_generate_ms: { p50: number; p99: number; max: number };
  code_generate_floor_ms: { p50: number; p99: number };
}

export async function benchWallet(count: number, progress: (m: string) => void): Promise<WalletFigures> {
  const crypto = nodeCrypto();
  const nowS = Math.floor(Date.now() / 1000);
  const world = await makeWorld(crypto, 'p256', nowS);
  const dir = mkdtempSync(join(tmpdir(), 'duet-bench-wallet-'));
  try {
    progress(`wallet: ${count} codes from a file-backed wallet`);
    const wallet = await openFileWallet({ dir, crypto, clock: { nowMs: () => Date.now() } });
    // The local world issues to a key it makes; here the wallet's own key is certified instead.
    const { credential } = await issueCredential(world, { serial: 1, holder: 1, nowS, devicePublicKey: wallet.publicKey });
    await wallet.installCredential(credential.bytes);
    const made = await latency(() => wallet.nextCode(), count);
    await wallet.close();
    const signer = await crypto.suite('p256').generate();
    const message = crypto.randomBytes(144);
    const floor = await latency(() => signer.sign(message), count);
    return { code_generate_ms: made, code_generate_floor_ms: { p50: floor.p50, p99: floor.p99 } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
