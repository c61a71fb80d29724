/** Proof of possession of the device key, and the enrolment / renewal flow built on it. */
import { concatBytes, type Credential, SUITE_ID, SUITES, toHex } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { describe, expect, it } from 'vitest';
import {
  CHALLENGE_MAX_BYTES,
  CHALLENGE_MIN_BYTES,
  DEVICE_PROOF_LABEL,
  deviceProofMessage,
  MemoryKeyVault,
  MemoryWalletStore,
  type RenewalRequest,
  type RenewalTransport,
  verifyDeviceProof,
  Wallet,
  WALLET_ERROR_CODES,
  WALLET_ERROR_WORDS,
} from '../src/index.js';
import { HOUR_S, makePlatform, type Platform, T0_S, TestClock, walletErrorCode } from './fixture.js';

const crypto = nodeCrypto();

async function openWallet(suite: (typeof SUITES)[number] = 'p256', platform?: Platform) {
  const clock = new TestClock();
  const wallet = await Wallet.open({
    crypto,
    clock,
    vault: new MemoryKeyVault(crypto),
    store: new MemoryWalletStore(),
    suite,
    ...(platform !== undefined ? { trust: platform.trust } : {}),
  });
  return { clock, wallet };
}

describe('device proof of possession', () => {
  it('signs label || suite id || public key || challenge length || challenge', async () => {
    const { wallet } = await openWallet();
    const challenge = new Uint8Array(20).fill(9);
    expect(toHex(DEVICE_PROOF_LABEL)).toBe(toHex(new TextEncoder().encode('duet/device-proof/v1\0')));
    expect(deviceProofMessage('p256', wallet.publicKey, challenge)).toEqual(
      concatBytes(DEVICE_PROOF_LABEL, Uint8Array.of(SUITE_ID.p256), wallet.publicKey, Uint8Array.of(20), challenge),
    );
  });

  it.each(SUITES)('a %s proof verifies for its key and challenge, and for nothing else', async (suite) => {
    const { wallet } = await openWallet(suite);
    const challenge = crypto.randomBytes(32);
    const req = await wallet.renewalRequest(challenge);
    expect(req.suite).toBe(suite);
    expect(req.devicePublicKey).toEqual(wallet.publicKey);
    expect(await verifyDeviceProof(crypto, suite, req.devicePublicKey, challenge, req.proof)).toBe(true);

    const otherChallenge = challenge.slice();
    otherChallenge[0] = (otherChallenge[0] as number) ^ 1;
    expect(await verifyDeviceProof(crypto, suite, req.devicePublicKey, otherChallenge, req.proof)).toBe(false);
    const otherKey = (await crypto.suite(suite).generate()).publicKey;
    expect(await verifyDeviceProof(crypto, suite, otherKey, challenge, req.proof)).toBe(false);
    const tampered = req.proof.slice();
    tampered[10] = (tampered[10] as number) ^ 0x40;
    expect(await verifyDeviceProof(crypto, suite, req.devicePublicKey, challenge, tampered)).toBe(false);
    expect(await verifyDeviceProof(crypto, suite, req.devicePublicKey.subarray(1), challenge, req.proof)).toBe(false);
  });

  it('a proof does not carry over to another suite that shares the key encoding (sm2 vs p256)', async () => {
    const { wallet } = await openWallet('sm2');
    const challenge = crypto.randomBytes(16);
    const req = await wallet.renewalRequest(challenge);
    expect(await verifyDeviceProof(crypto, 'p256', req.devicePublicKey, challenge, req.proof)).toBe(false);
  });

  it('refuses challenges that are too short or too long (bad_challenge); verify answers false', async () => {
    const { wallet } = await openWallet();
    for (const n of [0, CHALLENGE_MIN_BYTES - 1, CHALLENGE_MAX_BYTES + 1]) {
      const c = new Uint8Array(n);
      expect(await walletErrorCode(wallet.renewalRequest(c))).toBe('bad_challenge');
      expect(await verifyDeviceProof(crypto, 'p256', wallet.publicKey, c, new Uint8Array(64))).toBe(false);
    }
  });
});

/** A platform endpoint as a test double: it checks the proof, then issues for the proven key. */
function platformTransport(platform: Platform, clock: TestClock, seen: RenewalRequest[] = []): RenewalTransport {
  let challenge: Uint8Array = new Uint8Array();
  return {
    async challenge() {
      challenge = crypto.randomBytes(32);
      return challenge;
    },
    async issue(req) {
      seen.push(req);
      if (!(await verifyDeviceProof(crypto, req.suite, req.devicePublicKey, challenge, req.proof))) throw new Error('proof refused');
      const c: Credential = await platform.issue(
        { suite: req.suite, publicKey: req.devicePublicKey },
        { notBefore: clock.s - 60, notAfter: clock.s + 72 * HOUR_S },
      );
      return c.bytes;
    },
  };
}

describe('enrolment and renewal', () => {
  it('renew() proves the key, installs what comes back, and names the credential it renews', async () => {
    const platform = await makePlatform();
    const { clock, wallet } = await openWallet('p256', platform);
    const seen: RenewalRequest[] = [];
    const first = await wallet.renew(platformTransport(platform, clock, seen));
    expect(wallet.status()).toMatchObject({ enrolled: true, canMakeCodes: true });
    expect(seen[0]?.currentSerial).toBeUndefined();
    clock.advance(50 * HOUR_S);
    expect(wallet.status().needsRenewal).toBe(true);
    const second = await wallet.renewIfDue(platformTransport(platform, clock, seen));
    expect(seen[1]?.currentSerial).toBe(first.serial);
    expect(second?.serial).not.toBe(first.serial);
    expect((await wallet.nextCode()).code.credential.serial).toBe(second?.serial);
  });

  it('renewIfDue does nothing while the credential is fresh', async () => {
    const platform = await makePlatform();
    const { clock, wallet } = await openWallet('p256', platform);
    await wallet.renew(platformTransport(platform, clock));
    let asked = false;
    const result = await wallet.renewIfDue({
      challenge: async () => {
        asked = true;
        return crypto.randomBytes(32);
      },
      issue: async () => new Uint8Array(),
    });
    expect(result).toBeUndefined();
    expect(asked).toBe(false);
  });

  it('a platform failure is renewal_failed; a credential for another key is wrong_device', async () => {
    const platform = await makePlatform();
    const { wallet } = await openWallet('p256', platform);
    const down: RenewalTransport = {
      challenge: async () => {
        throw new Error('ECONNREFUSED');
      },
      issue: async () => new Uint8Array(),
    };
    expect(await walletErrorCode(wallet.renew(down))).toBe('renewal_failed');
    const confused: RenewalTransport = {
      challenge: async () => crypto.randomBytes(32),
      issue: async () => (await platform.issue(await crypto.suite('p256').generate(), { notAfter: T0_S + HOUR_S })).bytes,
    };
    expect(await walletErrorCode(wallet.renew(confused))).toBe('wrong_device');
  });
});

describe('wallet errors', () => {
  it('every code has words in English and Chinese', () => {
    for (const c of WALLET_ERROR_CODES) {
      expect(WALLET_ERROR_WORDS[c].en.length).toBeGreaterThan(5);
      expect(WALLET_ERROR_WORDS[c].zh).toMatch(/[\u4e00-\u9fff]/);
    }
  });
});
