/**
 * The risk policy: signed, versioned numbers that bound what offline acceptance can lose. Terminals
 * apply it in the decision; the platform's policy screen computes the worst case from it.
 */
import { concatBytes, label, Reader, Writer } from './bytes.js';
import { ProtocolError } from './errors.js';
import { readHeader, type SignerRef, writeHeader } from './header.js';
import { POLICY_RULES_MAX } from './limits.js';
import { type Fen, fenNonNegative } from './money.js';
import { type Role, ROLES } from './credential.js';
import { type Scene, sceneFromId, sceneId } from './scene.js';
import type { CryptoProvider, Signer } from './suites.js';
import { SIGNATURE_BYTES, SUITE_ID, suiteFromId } from './suites.js';
import { findTrustedKey, type TrustListBody } from './trust-list.js';

export interface SceneRule {
  readonly scene: Scene;
  /** Roles allowed to pay or pass at terminals of this scene. */
  readonly roles: readonly Role[];
  /** When true the credential's campus must equal the terminal's ("campus people only"). */
  readonly campusOnly: boolean;
  /** The most one offline payment may be at this scene (0 = no payments, identity checks only). */
  readonly perPaymentMax: Fen;
}

export interface RiskPolicyBody {
  readonly signer: SignerRef;
  readonly policyVersion: number;
  readonly issuedAt: number;
  /** A code is good for this long after it was made. */
  readonly codeWindowS: number;
  /** Tolerated difference between device and terminal clocks. */
  readonly clockSkewS: number;
  /** Past this since its last sync, a terminal stops accepting offline payments. */
  readonly maxOfflineS: number;
  /** Past this age of its deny list, a terminal stops accepting offline payments. */
  readonly maxListAgeS: number;
  /** Terminal-wide cap on one offline payment. */
  readonly perPaymentMax: Fen;
  /** Per credential per day on one terminal: the total and the count of offline payments. */
  readonly dayTotalMax: Fen;
  readonly dayCountMax: number;
  /** How long an online terminal waits for the platform before deciding offline. */
  readonly onlineBudgetMs: number;
  /** Share of payments an online terminal sends online even when it could decide offline, per 10,000. */
  readonly randomOnlinePer10k: number;
  readonly rules: readonly SceneRule[];
}

export interface RiskPolicy extends RiskPolicyBody {
  readonly signature: Uint8Array;
  readonly bytes: Uint8Array;
  readonly signed: Uint8Array;
}

export const POLICY_LABEL = label('duet/risk-policy/v1');

function rolesBits(roles: readonly Role[]): number {
  let bits = 0;
  for (const r of roles) bits |= 1 << ROLES.indexOf(r);
  return bits;
}

function bitsRoles(bits: number): Role[] {
  if (bits >>> ROLES.length !== 0) throw new ProtocolError('bad_value', `policy: unknown role bits ${bits.toString(2)}`);
  return ROLES.filter((_, i) => (bits & (1 << i)) !== 0);
}

function checkBody(b: Omit<RiskPolicyBody, 'signer'>): void {
  if (b.codeWindowS < 1) throw new ProtocolError('bad_value', 'policy: code window must be at least 1 s');
  if (b.dayTotalMax < b.perPaymentMax) throw new ProtocolError('bad_value', 'policy: day total below the per-payment cap');
  if (b.randomOnlinePer10k > 10_000) throw new ProtocolError('bad_value', 'policy: random online share above 100%');
  if (b.rules.length > POLICY_RULES_MAX) throw new ProtocolError('too_large', `policy: ${b.rules.length} rules`);
  let previous = 0;
  for (const rule of b.rules) {
    const id = sceneId(rule.scene);
    if (id <= previous) throw new ProtocolError('not_canonical', 'policy: rules must be in scene order, one per scene');
    previous = id;
  }
}

export async function signRiskPolicy(body: RiskPolicyBody, signer: Signer): Promise<RiskPolicy> {
  if (signer.suite !== body.signer.suite) throw new ProtocolError('unknown_suite', 'policy: signer suite differs');
  checkBody(body);
  const w = new Writer(64 + body.rules.length * 7);
  writeHeader(w, 'riskPolicy');
  w.u8(SUITE_ID[body.signer.suite], 'signer_suite').u16(body.signer.keyId, 'signer_key_id');
  w.u32(body.policyVersion, 'policy_version').u32(body.issuedAt, 'issued_at');
  w.u16(body.codeWindowS, 'code_window_s').u16(body.clockSkewS, 'clock_skew_s');
  w.u32(body.maxOfflineS, 'max_offline_s').u32(body.maxListAgeS, 'max_list_age_s');
  w.u32(body.perPaymentMax, 'per_payment_max').u32(body.dayTotalMax, 'day_total_max').u16(body.dayCountMax, 'day_count_max');
  w.u16(body.onlineBudgetMs, 'online_budget_ms').u16(body.randomOnlinePer10k, 'random_online_per_10k');
  w.u8(body.rules.length, 'rule_count');
  for (const rule of body.rules) {
    w.u8(sceneId(rule.scene), 'scene')
      .u8(rolesBits(rule.roles), 'roles')
      .u8(rule.campusOnly ? 1 : 0, 'flags');
    w.u32(rule.perPaymentMax, 'rule_per_payment_max');
  }
  const signed = w.finish();
  const signature = await signer.sign(concatBytes(POLICY_LABEL, signed));
  const bytes = concatBytes(signed, signature);
  return { ...body, signature, bytes, signed: bytes.subarray(0, signed.length) };
}

export function decodeRiskPolicy(input: Uint8Array): RiskPolicy {
  const bytes = input.slice();
  const r = new Reader(bytes, 'risk_policy');
  readHeader(r, 'riskPolicy');
  const signer: SignerRef = { suite: suiteFromId(r.u8('signer_suite'), 'signer_suite'), keyId: r.u16('signer_key_id') };
  const policyVersion = r.u32('policy_version');
  const issuedAt = r.u32('issued_at');
  const codeWindowS = r.u16('code_window_s');
  const clockSkewS = r.u16('clock_skew_s');
  const maxOfflineS = r.u32('max_offline_s');
  const maxListAgeS = r.u32('max_list_age_s');
  const perPaymentMax = fenNonNegative(r.u32('per_payment_max'));
  const dayTotalMax = fenNonNegative(r.u32('day_total_max'));
  const dayCountMax = r.u16('day_count_max');
  const onlineBudgetMs = r.u16('online_budget_ms');
  const randomOnlinePer10k = r.u16('random_online_per_10k');
  const count = r.u8('rule_count');
  if (count > POLICY_RULES_MAX) throw new ProtocolError('too_large', `policy: ${count} rules`);
  const rules: SceneRule[] = [];
  for (let i = 0; i < count; i++) {
    const scene = sceneFromId(r.u8('scene'), 'scene');
    const roles = bitsRoles(r.u8('roles'));
    const flags = r.u8('flags');
    if (flags > 1) throw new ProtocolError('bad_value', `policy: rule flags ${flags}`);
    rules.push({ scene, roles, campusOnly: flags === 1, perPaymentMax: fenNonNegative(r.u32('rule_per_payment_max')) });
  }
  const signed = r.since(0);
  const signature = r.bytesView(SIGNATURE_BYTES, 'signature');
  r.end();
  const body = {
    signer,
    policyVersion,
    issuedAt,
    codeWindowS,
    clockSkewS,
    maxOfflineS,
    maxListAgeS,
    perPaymentMax,
    dayTotalMax,
    dayCountMax,
    onlineBudgetMs,
    randomOnlinePer10k,
    rules,
  };
  checkBody(body);
  return { ...body, signature, bytes, signed };
}

/**
 * Verifies a policy at `nowS`: signed by a list-signing key that is valid now and was valid when the
 * policy was issued, and not issued in the future (beyond `skewS`). A policy has no expiry of its
 * own: it stays in force until a newer version replaces it, and only while its key is listed.
 */
export async function verifyRiskPolicy(
  policy: RiskPolicy,
  trust: TrustListBody,
  crypto: CryptoProvider,
  nowS: number,
  skewS = 0,
): Promise<void> {
  if (policy.issuedAt > nowS + skewS)
    throw new ProtocolError('not_yet_valid', `risk policy v${policy.policyVersion} issued at ${policy.issuedAt}, now ${nowS}`);
  const key = findTrustedKey(
    trust,
    policy.signer.keyId,
    'list_signer',
    policy.signer.suite,
    policy.issuedAt,
    Math.max(nowS, policy.issuedAt),
  );
  const ok = await crypto.suite(policy.signer.suite).verify(key.publicKey, concatBytes(POLICY_LABEL, policy.signed), policy.signature);
  if (!ok) throw new ProtocolError('bad_signature', `risk policy v${policy.policyVersion}: signature`);
}
