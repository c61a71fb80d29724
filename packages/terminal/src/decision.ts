/**
 * The offline decision (DESIGN §6), as a function of a state snapshot and what the journal knows.
 * It decides and explains; it writes nothing (terminal.ts makes the record durable before accepting).
 *
 * Order: ready → amount → clock → parse → trust → credential signature (cached) → code signature →
 * freshness → replay → deny lists → scene rules → limits (per payment, per day on this terminal,
 * credential totals, time since sync, list age).
 */
import {
  type Code,
  checkCodeFreshness,
  checkCredentialValidity,
  type CryptoProvider,
  type Fen,
  isProtocolError,
  type ProtocolError,
  scopeForScene,
  textToCode,
  type VerifiedCredentials,
  verifyCodeSignature,
  verifyCredentialSignature,
} from '@duet/protocol';
import { AMOUNT_MAX_FEN, CLOCK_BACKWARD_TOLERANCE_S } from './limits.js';
import type { SpendRow } from './ports.js';
import type { DeclineReason } from './reasons.js';
import type { Snapshot } from './state.js';

export interface Failure {
  readonly ok: false;
  readonly reason: DeclineReason;
  readonly detail: string;
  readonly code?: Code;
}
export type Check = { readonly ok: true; readonly code: Code } | Failure;

export interface Lookups {
  /** Has this terminal already accepted (serial, counter)? */
  seen(serial: number, counter: number): boolean;
  spend(serial: number): SpendRow | undefined;
  /** Time of the newest record in the journal (0 if none): the clock must not run back behind it. */
  readonly headTime: number;
}

const fail = (reason: DeclineReason, detail: string, code?: Code): Failure =>
  code === undefined ? { ok: false, reason, detail } : { ok: false, reason, detail, code };

/** Checks that do not depend on the code: the terminal can decide at all. */
export function checkReady(s: Snapshot, nowS: number, headTime: number): Failure | undefined {
  if (s.trust === undefined || s.policy === undefined || s.identity === undefined || s.deny.version === 0) {
    return fail('terminal_not_ready', 'trust list, deny list, risk policy and certificate are all needed');
  }
  if (nowS + CLOCK_BACKWARD_TOLERANCE_S < headTime) return fail('clock_regressed', `now ${nowS} is before the last record at ${headTime}`);
  if (nowS >= s.identity.certificate.notAfter)
    return fail('terminal_certificate_expired', `certificate expired at ${s.identity.certificate.notAfter}`);
  return undefined;
}

export function checkAmount(amount: number): Failure | undefined {
  if (!Number.isSafeInteger(amount) || amount < 1 || amount > AMOUNT_MAX_FEN) {
    return fail('amount_invalid', `amount ${String(amount)} is not a whole number of fen from 1 to ${AMOUNT_MAX_FEN}`);
  }
  return undefined;
}

function protocolReason(e: ProtocolError): DeclineReason {
  switch (e.code) {
    case 'bad_prefix':
      return 'not_a_code';
    case 'unknown_key':
    case 'wrong_key_role':
    case 'unknown_suite':
      return 'issuer_unknown';
    default:
      return 'code_malformed';
  }
}

/**
 * The checks every use of a code shares (payment and identity check): parse, trust, signatures,
 * freshness, replay, deny lists and scene rules.
 */
export async function checkCode(
  s: Snapshot,
  text: string,
  nowS: number,
  look: Lookups,
  crypto: CryptoProvider,
  cache: VerifiedCredentials,
): Promise<Check> {
  const trust = s.trust;
  const policy = s.policy;
  const identity = s.identity;
  if (trust === undefined || policy === undefined || identity === undefined) return fail('terminal_not_ready', 'not set up');
  let code: Code;
  try {
    code = textToCode(text);
  } catch (e) {
    if (isProtocolError(e)) return fail(protocolReason(e), e.detail);
    throw e;
  }
  const c = code.credential;
  // Both signatures are checked at once: a new device key is imported on libuv's thread pool while
  // the issuer signature is verified on this one. Failures are still reported in the documented
  // order (credential before code), so the outcome is the same as checking one after the other.
  const [credentialError, codeError] = await Promise.all([
    verifyCredentialSignature(c, trust, crypto, cache).then(none, protocolErrorOnly),
    verifyCodeSignature(code, crypto).then(none, protocolErrorOnly),
  ]);
  if (credentialError !== undefined) {
    const e = credentialError;
    return fail(
      e.code === 'bad_signature'
        ? 'credential_forged'
        : e.code === 'expired' || e.code === 'not_yet_valid'
          ? 'issuer_unknown'
          : protocolReason(e),
      e.detail,
      code,
    );
  }
  if (codeError !== undefined) return fail('code_forged', codeError.detail, code);
  const freshness = { windowS: policy.codeWindowS, skewS: policy.clockSkewS };
  try {
    checkCredentialValidity(c, nowS, freshness.skewS);
  } catch (e) {
    if (isProtocolError(e)) return fail(e.code === 'not_yet_valid' ? 'credential_not_yet_valid' : 'credential_expired', e.detail, code);
    throw e;
  }
  try {
    checkCodeFreshness(code, nowS, freshness);
  } catch (e) {
    if (isProtocolError(e)) return fail(e.code === 'not_yet_valid' ? 'code_from_future' : 'code_expired', e.detail, code);
    throw e;
  }
  if (look.seen(c.serial, code.counter)) return fail('replay', `code ${c.serial}/${code.counter} was already used here`, code);
  if (s.deny.has('credential', c.serial))
    return fail('credential_denied', `credential ${c.serial} is on deny list v${s.deny.version}`, code);
  if (s.deny.has('holder', c.holder)) return fail('holder_denied', `holder ${c.holder} is on deny list v${s.deny.version}`, code);
  const cert = identity.certificate;
  if (!c.scopes.includes(scopeForScene(cert.scene)))
    return fail('scope_not_allowed', `credential scopes ${c.scopes.join(',')} lack ${cert.scene}`, code);
  const rule = policy.rules.find((r) => r.scene === cert.scene);
  if (rule === undefined) return fail('scope_not_allowed', `policy v${policy.policyVersion} has no rule for ${cert.scene}`, code);
  if (!rule.roles.includes(c.role)) return fail('role_not_allowed', `${c.role} may not use ${cert.scene} terminals`, code);
  if (rule.campusOnly && c.campus !== cert.campus)
    return fail('campus_not_allowed', `campus ${c.campus} at a campus ${cert.campus} terminal`, code);
  return { ok: true, code };
}

const none = (): undefined => undefined;

/** Keeps a ProtocolError as a value; anything else is a bug and is rethrown. */
function protocolErrorOnly(e: unknown): ProtocolError {
  if (isProtocolError(e)) return e;
  throw e;
}

/** The campus-local day number of a time (days since the epoch, shifted by the campus offset). */
export function dayOf(timeS: number, dayOffsetS: number): number {
  return Math.floor((timeS + dayOffsetS) / 86_400);
}

/** The offline limits of a payment, after checkCode passed. Returns the spend row the payment makes. */
export function checkLimits(
  s: Snapshot,
  code: Code,
  amount: Fen,
  nowS: number,
  look: Lookups,
  dayOffsetS: number,
): { readonly ok: true; readonly spend: SpendRow } | { readonly ok: false; readonly reason: DeclineReason; readonly detail: string } {
  const policy = s.policy;
  const cert = s.identity?.certificate;
  const trust = s.trust;
  if (policy === undefined || cert === undefined || trust === undefined)
    return { ok: false, reason: 'terminal_not_ready', detail: 'not set up' };
  const c = code.credential;
  const rule = policy.rules.find((r) => r.scene === cert.scene);
  const cap = Math.min(c.limits.perPayment, policy.perPaymentMax, rule?.perPaymentMax ?? 0);
  if (amount > cap) return { ok: false, reason: 'over_payment_limit', detail: `${amount} fen > ${cap} fen` };
  const day = dayOf(nowS, dayOffsetS);
  const row = look.spend(c.serial);
  const dayTotal = row !== undefined && row.day === day ? row.dayTotal : 0;
  const dayCount = row !== undefined && row.day === day ? row.dayCount : 0;
  const total = row?.total ?? 0;
  const count = row?.count ?? 0;
  if (dayTotal + amount > policy.dayTotalMax)
    return { ok: false, reason: 'over_day_total', detail: `${dayTotal} + ${amount} > ${policy.dayTotalMax} fen today` };
  if (dayCount + 1 > policy.dayCountMax)
    return { ok: false, reason: 'over_day_count', detail: `${dayCount} payments today, cap ${policy.dayCountMax}` };
  if (total + amount > c.limits.offlineTotal)
    return { ok: false, reason: 'over_offline_total', detail: `${total} + ${amount} > ${c.limits.offlineTotal} fen` };
  if (count + 1 > c.limits.offlineCount)
    return { ok: false, reason: 'over_offline_count', detail: `${count} payments, cap ${c.limits.offlineCount}` };
  if (nowS - s.lastSyncS > policy.maxOfflineS)
    return { ok: false, reason: 'sync_overdue', detail: `last sync ${nowS - s.lastSyncS} s ago, cap ${policy.maxOfflineS} s` };
  if (nowS >= s.deny.expiresAt || nowS - s.deny.issuedAt > policy.maxListAgeS || nowS >= trust.expiresAt) {
    return {
      ok: false,
      reason: 'lists_stale',
      detail: `deny list v${s.deny.version} issued ${s.deny.issuedAt}, expires ${s.deny.expiresAt}; trust list expires ${trust.expiresAt}`,
    };
  }
  return {
    ok: true,
    spend: {
      serial: c.serial,
      total: (total + amount) as Fen,
      count: count + 1,
      day,
      dayTotal: (dayTotal + amount) as Fen,
      dayCount: dayCount + 1,
      notAfter: c.notAfter,
    },
  };
}
