/**
 * Internal: which credential makes codes now, and the figures the wallet screen shows (DESIGN §16:
 * "the wallet shows what is left and renews the moment it is online").
 */
import type { Credential, OfflineLimits, Role, Scope, Signer, SuiteName } from '@duet/protocol';
import { WALLET_ERROR_WORDS, type Words } from './errors.js';
import { RENEW_AHEAD_PERCENT, RENEW_AHEAD_S } from './limits.js';

/** A credential held, with the first counter it made a code with (undefined until then). */
export interface Held {
  readonly credential: Credential;
  firstCounter: number | undefined;
}

export const STATUS_REASONS = [
  'ready',
  'renewal_due',
  'no_credential',
  'credential_expired',
  'credential_not_yet_valid',
  'counter_exhausted',
] as const;
export type StatusReason = (typeof STATUS_REASONS)[number];

export const STATUS_WORDS: { readonly [R in StatusReason]: Words } = {
  ready: { en: 'Ready to pay offline', zh: '可离线支付' },
  renewal_due: { en: 'Ready to pay offline; the credential renews when online', zh: '可离线支付，联网后将自动更新凭证' },
  no_credential: WALLET_ERROR_WORDS.no_credential,
  credential_expired: WALLET_ERROR_WORDS.credential_expired,
  credential_not_yet_valid: WALLET_ERROR_WORDS.credential_not_yet_valid,
  counter_exhausted: WALLET_ERROR_WORDS.counter_exhausted,
};

export interface CredentialStatus {
  readonly serial: number;
  readonly holder: number;
  readonly campus: number;
  readonly role: Role;
  readonly scopes: readonly Scope[];
  readonly notBefore: number;
  readonly notAfter: number;
  /** Seconds until notAfter (0 once expired). */
  readonly secondsLeft: number;
  /** The offline limits the credential carries (enforced by terminals, shown to the holder). */
  readonly limits: OfflineLimits;
  /**
   * Counters used since this credential made its first code. Counters a crash skipped count too,
   * so this is an upper bound on the codes shown, and it is not a count of payments: a screen
   * refreshes its code without any payment being made.
   */
  readonly codesMade: number;
}

export interface WalletStatus {
  /** The clock's time the figures were computed at, seconds since the epoch. */
  readonly nowS: number;
  readonly device: { readonly suite: SuiteName; readonly publicKey: Uint8Array };
  /** At least one credential is held (maybe expired). */
  readonly enrolled: boolean;
  /** nextCode() would make a code now. */
  readonly canMakeCodes: boolean;
  /** The credential codes are made with now or, when none is usable, the newest one held. */
  readonly credential?: CredentialStatus;
  /** A held credential that starts later than now (the next one of a renewal overlap). */
  readonly pending?: CredentialStatus;
  /** Counters this wallet can still use, ever (renewal does not reset them). */
  readonly countersLeft: number;
  /** True when no credential is held, the newest one has expired, or it nears its end. */
  readonly needsRenewal: boolean;
  readonly reason: StatusReason;
  readonly reasonWords: Words;
}

export type Pick =
  | { readonly held: Held }
  | { readonly reason: 'no_credential' | 'credential_expired' | 'credential_not_yet_valid'; readonly detail: string };

/** The credential for a code at `nowS`: among those valid now, the one that started last. */
export function pickCredential(held: readonly Held[], nowS: number): Pick {
  let best: Held | undefined;
  for (const h of held) {
    const c = h.credential;
    if (c.notBefore <= nowS && nowS < c.notAfter && (best === undefined || c.notBefore > best.credential.notBefore)) best = h;
  }
  if (best !== undefined) return { held: best };
  if (held.length === 0) return { reason: 'no_credential', detail: 'no credential installed' };
  const future = held.find((h) => h.credential.notBefore > nowS);
  if (future !== undefined) {
    return {
      reason: 'credential_not_yet_valid',
      detail: `credential ${future.credential.serial} starts at ${future.credential.notBefore}, now ${nowS}`,
    };
  }
  const newest = held[0]?.credential;
  return { reason: 'credential_expired', detail: `credential ${newest?.serial} expired at ${newest?.notAfter}, now ${nowS}` };
}

/** Renewal is due when less than 24 h or less than 25 % of the validity is left (DESIGN §5, §16). */
export function renewalDue(c: Credential | undefined, nowS: number): boolean {
  if (c === undefined || nowS >= c.notAfter) return true;
  const left = c.notAfter - nowS;
  return left < RENEW_AHEAD_S || left * 100 < (c.notAfter - c.notBefore) * RENEW_AHEAD_PERCENT;
}

function describe(h: Held, nowS: number, lastCounter: number): CredentialStatus {
  const c = h.credential;
  return {
    serial: c.serial,
    holder: c.holder,
    campus: c.campus,
    role: c.role,
    scopes: c.scopes,
    notBefore: c.notBefore,
    notAfter: c.notAfter,
    secondsLeft: Math.max(0, c.notAfter - nowS),
    limits: c.limits,
    codesMade: h.firstCounter === undefined ? 0 : Math.max(0, lastCounter - h.firstCounter + 1),
  };
}

/** `held` is newest first (by expiry). */
export function walletStatus(
  held: readonly Held[],
  nowS: number,
  counters: { readonly left: number; readonly lastTaken: number },
  device: Signer,
): WalletStatus {
  const pick = pickCredential(held, nowS);
  const shown = 'held' in pick ? pick.held : held[0];
  const pending = held.find((h) => h.credential.notBefore > nowS && h !== shown);
  const needsRenewal = renewalDue(held[0]?.credential, nowS);
  let reason: StatusReason;
  if (counters.left === 0) reason = 'counter_exhausted';
  else if (!('held' in pick)) reason = pick.reason;
  else reason = needsRenewal ? 'renewal_due' : 'ready';
  return {
    nowS,
    device: { suite: device.suite, publicKey: device.publicKey.slice() },
    enrolled: held.length > 0,
    canMakeCodes: 'held' in pick && counters.left > 0,
    ...(shown !== undefined ? { credential: describe(shown, nowS, counters.lastTaken) } : {}),
    ...(pending !== undefined ? { pending: describe(pending, nowS, counters.lastTaken) } : {}),
    countersLeft: counters.left,
    needsRenewal,
    reason,
    reasonWords: STATUS_WORDS[reason],
  };
}
