/**
 * Enrolment and issuance (DESIGN §5): a device proves it holds its key by signing a fresh
 * challenge; the platform issues a credential only to an active holder who accepted the current
 * withholding agreement and owes nothing, with offline limits computed from the holder's money and
 * the operator's risk settings. Every refusal has its own code.
 */
import {
  type CryptoProvider,
  type Credential,
  fen,
  minFen,
  PUBLIC_KEY_BYTES,
  type SuiteName,
  signCredential,
  SUITES,
} from '@duet/protocol';
import { verifyDeviceProof } from '@duet/wallet';
import type { Dialect, Migration, Queryable } from './db/db.js';
import { ApiError } from './errors.js';
import { acceptedCurrent, getHolder } from './holders.js';
import { purses } from './purses.js';
import { currentSettings, type RiskSettings } from './settings.js';
import type { SigningKeys } from './signing-keys.js';

/** A challenge is good for five minutes: long enough for a slow phone, short enough to be useless later. */
export const CHALLENGE_TTL_S = 300;
export const CHALLENGE_BYTES = 32;
/** A holder's first week: new accounts get half the offline caps until they have some history. */
export const NEW_HOLDER_DAYS = 7;

export const issuanceMigrations: Migration[] = [
  {
    id: 'issuance/001-challenges-credentials',
    sql: (d: Dialect) => [
      `CREATE TABLE challenges (
        nonce ${d.bytes} PRIMARY KEY,
        holder_id ${d.int} NOT NULL,
        expires_at ${d.int} NOT NULL,
        used_at ${d.int}
      )`,
      `CREATE TABLE credentials (
        serial ${d.serialKey},
        holder_id ${d.int} NOT NULL,
        device_id ${d.int} NOT NULL,
        issuer_key_id ${d.int} NOT NULL,
        not_before ${d.int} NOT NULL,
        not_after ${d.int} NOT NULL,
        per_payment ${d.int} NOT NULL,
        offline_total ${d.int} NOT NULL,
        offline_count ${d.int} NOT NULL,
        bytes ${d.bytes} NOT NULL,
        status TEXT NOT NULL,
        issued_at ${d.int} NOT NULL
      )`,
      'CREATE INDEX credentials_holder ON credentials (holder_id)',
    ],
  },
];

export async function newChallenge(q: Queryable, crypto: CryptoProvider, holderId: number, nowS: number): Promise<Uint8Array> {
  await getHolder(q, holderId);
  const nonce = crypto.randomBytes(CHALLENGE_BYTES);
  await q.run('DELETE FROM challenges WHERE expires_at < ?', [nowS]);
  await q.run('INSERT INTO challenges (nonce, holder_id, expires_at, used_at) VALUES (?, ?, ?, NULL)', [
    nonce,
    holderId,
    nowS + CHALLENGE_TTL_S,
  ]);
  return nonce;
}

export interface DeviceProof {
  readonly suite: SuiteName;
  readonly devicePublicKey: Uint8Array;
  readonly challenge: Uint8Array;
  readonly proof: Uint8Array;
  readonly label: string;
}

/**
 * Checks the proof of possession against a challenge this holder was given and has not used, then
 * registers the device (or finds it, if this holder registered it before). Returns the device id.
 */
export async function registerDevice(
  q: Queryable,
  crypto: CryptoProvider,
  holderId: number,
  p: DeviceProof,
  nowS: number,
): Promise<number> {
  if (!SUITES.includes(p.suite) || p.devicePublicKey.length !== PUBLIC_KEY_BYTES[p.suite])
    throw new ApiError('validation_failed', 'device key');
  const c = await q.one('SELECT holder_id, expires_at, used_at FROM challenges WHERE nonce = ?', [p.challenge]);
  if (c === undefined || Number(c.holder_id) !== holderId || c.used_at !== null || Number(c.expires_at) < nowS) {
    throw new ApiError('challenge_expired', 'the challenge is unknown, used, expired or someone else’s');
  }
  if (!crypto.suite(p.suite).isValidPublicKey(p.devicePublicKey))
    throw new ApiError('bad_proof', 'the device key is not a valid public key');
  if (!(await verifyDeviceProof(crypto, p.suite, p.devicePublicKey, p.challenge, p.proof))) throw new ApiError('bad_proof');
  await q.run('UPDATE challenges SET used_at = ? WHERE nonce = ?', [nowS, p.challenge]);
  const existing = await q.one('SELECT id, holder_id, status FROM devices WHERE public_key = ?', [p.devicePublicKey]);
  if (existing !== undefined) {
    if (Number(existing.holder_id) !== holderId) throw new ApiError('conflict', 'this device key belongs to another holder');
    if (existing.status !== 'active') throw new ApiError('forbidden', 'this device was removed; register a new key');
    return Number(existing.id);
  }
  const row = await q.one<{ id: number }>(
    'INSERT INTO devices (holder_id, suite, public_key, label, status, registered_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id',
    [holderId, p.suite, p.devicePublicKey, p.label.slice(0, 100), 'active', nowS],
  );
  if (row === undefined) throw new ApiError('internal', 'device insert returned nothing');
  return Number(row.id);
}

export interface OfflineLimitsPlan {
  readonly perPayment: number;
  readonly offlineTotal: number;
  readonly offlineCount: number;
  readonly availableFen: number;
  readonly explanation: string;
}

/**
 * Offline limits for a holder now: the caps of the risk settings, never above the money the holder
 * actually has (subsidy + cash + unused credit line), halved in the first week of an account.
 */
export function planLimits(s: RiskSettings, availableFen: number, accountAgeS: number): OfflineLimitsPlan {
  const young = accountAgeS < NEW_HOLDER_DAYS * 86_400;
  const totalCap = young ? Math.floor(s.offlineTotalCapFen / 2) : s.offlineTotalCapFen;
  const offlineTotal = Math.max(0, Math.min(totalCap, availableFen));
  const perPayment = Math.min(s.perPaymentCapFen, offlineTotal);
  return {
    perPayment,
    offlineTotal,
    offlineCount: s.offlineCountCap,
    availableFen,
    explanation: `min(${young ? 'half the ' : ''}cap ${totalCap} fen, available ${availableFen} fen)`,
  };
}

export async function issueCredential(
  q: Queryable,
  keys: SigningKeys,
  o: { holderId: number; deviceId: number },
  nowS: number,
): Promise<Credential> {
  const holder = await getHolder(q, o.holderId);
  if (holder.status !== 'active') throw new ApiError('account_blocked', holder.blockReason ?? holder.status);
  if ((await acceptedCurrent(q, holder.id)) === undefined) throw new ApiError('agreement_required');
  const money = await purses(q, holder.id);
  if (money.arrears > 0) throw new ApiError('in_arrears', `owes ${money.arrears} fen`);
  const device = await q.one('SELECT suite, public_key, status FROM devices WHERE id = ? AND holder_id = ?', [o.deviceId, holder.id]);
  if (device === undefined || device.status !== 'active') throw new ApiError('not_found', `device ${o.deviceId}`);
  const { settings } = await currentSettings(q);
  const created = await q.one('SELECT created_at FROM holders WHERE id = ?', [holder.id]);
  const plan = planLimits(settings, money.available, nowS - Number(created?.created_at ?? nowS));
  if (plan.offlineTotal < settings.minimumAvailableFen || plan.offlineTotal < 1) {
    throw new ApiError(
      'insufficient_funds',
      `available ${money.available} fen is below the ${settings.minimumAvailableFen} fen needed to pay offline`,
    );
  }
  const suite = SUITES.find((s) => s === device.suite);
  if (suite === undefined) throw new ApiError('internal', `device suite ${String(device.suite)}`);
  const issuer = await keys.active('issuer');
  const row = await q.one<{ serial: number }>(
    'INSERT INTO credentials (holder_id, device_id, issuer_key_id, not_before, not_after, per_payment, offline_total, offline_count, bytes, status, issued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING serial',
    [
      holder.id,
      o.deviceId,
      issuer.keyId,
      nowS - 60,
      nowS + settings.credentialValidityS,
      plan.perPayment,
      plan.offlineTotal,
      plan.offlineCount,
      new Uint8Array(0),
      'pending',
      nowS,
    ],
  );
  if (row === undefined) throw new ApiError('internal', 'credential insert returned nothing');
  const credential = await signCredential(
    {
      issuerSuite: issuer.signer.suite,
      deviceSuite: suite,
      issuerKeyId: issuer.keyId,
      serial: Number(row.serial),
      holder: holder.id,
      campus: holder.campus,
      role: holder.role,
      scopes: ['canteen', 'shop', 'bus', 'gate'],
      devicePublicKey: device.public_key as Uint8Array,
      limits: {
        perPayment: fen(plan.perPayment),
        offlineTotal: minFen(fen(plan.offlineTotal), fen(0xffff_ffff)),
        offlineCount: plan.offlineCount,
      },
      notBefore: nowS - 60,
      notAfter: nowS + settings.credentialValidityS,
    },
    issuer.signer,
  );
  await q.run('UPDATE credentials SET bytes = ?, status = ? WHERE serial = ?', [credential.bytes, 'active', credential.serial]);
  return credential;
}

/** Whether each credential may still pay online (CredentialCheck of online-auth.ts): active, or why not. */
export async function credentialStandings(
  q: Queryable,
  serials: readonly number[],
): Promise<ReadonlyMap<number, { readonly active: true } | { readonly active: false; readonly detail: string }>> {
  const rows = await q.all(`SELECT serial, status FROM credentials WHERE serial IN (${serials.map(() => '?').join(', ')})`, serials);
  return new Map(
    rows.map((r) => [
      Number(r.serial),
      r.status === 'active'
        ? { active: true as const }
        : { active: false as const, detail: `credential ${String(r.serial)} is ${String(r.status)}` },
    ]),
  );
}

/** Revokes a holder's active credentials at `nowS` (clearing judges later payments against that time). */
export async function revokeCredentialsOf(q: Queryable, holderId: number, nowS: number): Promise<number[]> {
  const rows = await q.all('SELECT serial FROM credentials WHERE holder_id = ? AND status = ?', [holderId, 'active']);
  await q.run('UPDATE credentials SET status = ?, revoked_at = ? WHERE holder_id = ? AND status = ?', [
    'revoked',
    nowS,
    holderId,
    'active',
  ]);
  return rows.map((r) => Number(r.serial));
}
