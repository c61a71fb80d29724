/**
 * The wallet against the real platform, shared by the headless wallet (`duet wallet`), the browser
 * wallet and the benchmarks: holder sign-in, the withholding agreement, and the renewal transport
 * (a fresh challenge, device registration with proof of possession once, then the credential).
 */
import { b64, field, isNum, isStr, type PlatformClient, unb64 } from '@duet/protocol/client';
import type { RenewalTransport } from './proof.js';

/** A holder's session with the platform, and the device registered under it (once registered). */
export interface HolderSession {
  readonly holderId: number;
  readonly token: string;
  deviceId?: number;
}

export async function holderLogin(client: PlatformClient, holderId: number, password: string): Promise<HolderSession> {
  const login = await client.call('POST', '/v1/holder/login', { json: { holderId, password } });
  return { holderId, token: field(login, 'token', isStr) };
}

/** The withholding agreement in force, in both languages. */
export async function currentAgreement(client: PlatformClient, s: HolderSession): Promise<{ version: number; en: string; zh: string }> {
  const a = await client.call('GET', '/v1/holder/agreement', { token: s.token });
  return { version: field(a, 'version', isNum), en: field(a, 'textEn', isStr), zh: field(a, 'textZh', isStr) };
}

export async function acceptAgreement(client: PlatformClient, s: HolderSession, version: number, device: string): Promise<void> {
  await client.call('POST', '/v1/holder/agreement', { token: s.token, json: { version, device } });
}

/** The platform as the wallet's renewal transport; registers the device key on first use. */
export function platformRenewal(client: PlatformClient, s: HolderSession, label: string): RenewalTransport {
  return {
    async challenge() {
      return unb64(field(await client.call('POST', '/v1/holder/challenge', { token: s.token }), 'challenge', isStr), 'challenge');
    },
    async issue(request) {
      if (s.deviceId === undefined) {
        const d = await client.call('POST', '/v1/holder/devices', {
          token: s.token,
          json: {
            suite: request.suite,
            publicKey: b64(request.devicePublicKey),
            challenge: b64(request.challenge),
            proof: b64(request.proof),
            label,
          },
        });
        s.deviceId = field(d, 'deviceId', isNum);
      }
      const c = await client.call('POST', '/v1/holder/credentials', { token: s.token, json: { deviceId: s.deviceId } });
      return unb64(field(c, 'credential', isStr), 'credential');
    },
  };
}
