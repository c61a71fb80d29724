/**
 * Protocol benchmarks (issue 2): per suite, the code's size, codes made and verified per second, and
 * in the same run the floor they are compared with: raw signature verifications per second.
 * Verifying a code cold costs two verifications (issuer on the credential, device on the code), so
 * the best possible cold rate is half the floor; a cached credential leaves one.
 */
import { CredentialCache, codeToText, decodeCode, makeCode, SUITES, type SuiteName, verifyCode } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { issueCredential, makeWorld } from '../world.js';
import { rate } from './measure.js';

export interface ProtocolFigures {
  code_bytes: Record<SuiteName, number>;
  code_text_chars: Record<SuiteName, number>;
  code_make_per_s: Record<SuiteName, number>;
  code_verify_per_s: Record<SuiteName, number>;
  code_verify_cached_per_s: Record<SuiteName, number>;
  sig_verify_per_s: Record<SuiteName, number>;
  /** code_verify_per_s × 2 / sig_verify_per_s: 1.0 means no cost beyond the two verifications. */
  code_verify_vs_floor: Record<SuiteName, number>;
}

export async function benchProtocol(seconds: number, progress: (msg: string) => void): Promise<ProtocolFigures> {
  const crypto = nodeCrypto();
  const nowS = Math.floor(Date.now() / 1000);
  const out: ProtocolFigures = {
    code_bytes: {} as Record<SuiteName, number>,
    code_text_chars: {} as Record<SuiteName, number>,
    code_make_per_s: {} as Record<SuiteName, number>,
    code_verify_per_s: {} as Record<SuiteName, number>,
    code_verify_cached_per_s: {} as Record<SuiteName, number>,
    sig_verify_per_s: {} as Record<SuiteName, number>,
    code_verify_vs_floor: {} as Record<SuiteName, number>,
  };
  for (const suite of SUITES) {
    progress(`protocol: ${suite}`);
    // Issuer and device on the same suite, so each figure is that suite's alone.
    const world = await makeWorld(crypto, suite, nowS);
    const { device, credential } = await issueCredential(world, { serial: 77, holder: 88, nowS, deviceSuite: suite });
    const code = await makeCode(credential, device, nowS, 1);
    out.code_bytes[suite] = code.bytes.length;
    out.code_text_chars[suite] = codeToText(code).length;

    let counter = 2;
    out.code_make_per_s[suite] = (await rate(() => makeCode(credential, device, nowS, counter++), seconds)).perSecond;

    const check = { trust: world.trustList, crypto, nowS, windowS: 60, skewS: 300 };
    out.code_verify_per_s[suite] = (await rate(() => verifyCode(decodeCode(code.bytes), check), seconds)).perSecond;
    const cache = new CredentialCache();
    out.code_verify_cached_per_s[suite] = (await rate(() => verifyCode(decodeCode(code.bytes), { ...check, cache }), seconds)).perSecond;

    const impl = crypto.suite(suite);
    const message = code.signed;
    const signature = await device.sign(message);
    out.sig_verify_per_s[suite] = (await rate(() => impl.verify(device.publicKey, message, signature), seconds)).perSecond;
    out.code_verify_vs_floor[suite] = Math.round((out.code_verify_per_s[suite] * 200) / out.sig_verify_per_s[suite]) / 100;
  }
  return out;
}
