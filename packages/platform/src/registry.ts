/**
 * The terminal registry: merchants, their terminals, one-time activation codes, and terminal
 * certificates binding a terminal's own key (made on the terminal; the platform sees only the public
 * half) to its merchant, scene, campus and location.
 */
import {
  type CryptoProvider,
  activationProofMessage,
  PUBLIC_KEY_BYTES,
  type Scene,
  SCENES,
  type SuiteName,
  SUITES,
  signTerminalCertificate,
  toHex,
} from '@duet/protocol';
import type { Dialect, Migration, Queryable } from './db/db.js';
import { ApiError } from './errors.js';
import type { SigningKeys } from './signing-keys.js';

/** An activation code is good for 24 hours and once: an installer types it at the new terminal. */
export const ACTIVATION_TTL_S = 86_400;
/** Certificates last a year; a terminal re-activates (new key, new certificate) before then. */
export const TERMINAL_CERT_VALIDITY_S = 365 * 86_400;

export const registryMigrations: Migration[] = [
  {
    id: 'registry/001-merchants-terminals',
    sql: (d: Dialect) => [
      `CREATE TABLE merchants (
        id ${d.serialKey},
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        created_at ${d.int} NOT NULL
      )`,
      `CREATE TABLE terminals (
        id ${d.serialKey},
        merchant_id ${d.int} NOT NULL,
        scene TEXT NOT NULL,
        campus ${d.int} NOT NULL,
        location TEXT NOT NULL,
        status TEXT NOT NULL,
        suite TEXT,
        public_key ${d.bytes},
        certificate ${d.bytes},
        activated_at ${d.int},
        last_seen_at ${d.int},
        created_at ${d.int} NOT NULL
      )`,
      `CREATE TABLE activation_codes (
        code_hash TEXT PRIMARY KEY,
        terminal_id ${d.int} NOT NULL,
        expires_at ${d.int} NOT NULL,
        used_at ${d.int}
      )`,
    ],
  },
];

export interface Merchant {
  readonly id: number;
  readonly name: string;
  readonly category: string;
}

export async function createMerchant(q: Queryable, name: string, category: string, nowS: number): Promise<Merchant> {
  const r = await q.one<{ id: number }>('INSERT INTO merchants (name, category, created_at) VALUES (?, ?, ?) RETURNING id', [
    name,
    category,
    nowS,
  ]);
  if (r === undefined) throw new ApiError('internal', 'merchant insert');
  return { id: Number(r.id), name, category };
}

export async function listMerchants(q: Queryable): Promise<Merchant[]> {
  const rows = await q.all('SELECT id, name, category FROM merchants ORDER BY id');
  return rows.map((r) => ({ id: Number(r.id), name: String(r.name), category: String(r.category) }));
}

export interface TerminalRow {
  readonly id: number;
  readonly merchantId: number;
  readonly scene: Scene;
  readonly campus: number;
  readonly location: string;
  readonly status: 'pending' | 'active' | 'revoked';
  readonly suite: SuiteName | null;
  readonly publicKey: Uint8Array | null;
  readonly activatedAt: number | null;
  readonly lastSeenAt: number | null;
}

function toTerminal(r: Record<string, unknown>): TerminalRow {
  return {
    id: Number(r.id),
    merchantId: Number(r.merchant_id),
    scene: SCENES.find((s) => s === r.scene) ?? 'canteen',
    campus: Number(r.campus),
    location: String(r.location),
    status: r.status === 'active' ? 'active' : r.status === 'revoked' ? 'revoked' : 'pending',
    suite: SUITES.find((s) => s === r.suite) ?? null,
    publicKey: r.public_key instanceof Uint8Array ? r.public_key : null,
    activatedAt: r.activated_at === null || r.activated_at === undefined ? null : Number(r.activated_at),
    lastSeenAt: r.last_seen_at === null || r.last_seen_at === undefined ? null : Number(r.last_seen_at),
  };
}

/** Registers a terminal and returns it with a one-time activation code (shown once, stored hashed). */
export async function createTerminal(
  q: Queryable,
  crypto: CryptoProvider,
  o: { merchantId: number; scene: Scene; campus: number; location: string },
  nowS: number,
): Promise<{ terminal: TerminalRow; activationCode: string }> {
  const m = await q.one('SELECT id FROM merchants WHERE id = ?', [o.merchantId]);
  if (m === undefined) throw new ApiError('not_found', `merchant ${o.merchantId}`);
  if (new TextEncoder().encode(o.location).length > 64) throw new ApiError('validation_failed', 'location is longer than 64 bytes');
  const r = await q.one(
    'INSERT INTO terminals (merchant_id, scene, campus, location, status, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *',
    [o.merchantId, o.scene, o.campus, o.location, 'pending', nowS],
  );
  if (r === undefined) throw new ApiError('internal', 'terminal insert');
  const terminal = toTerminal(r);
  return { terminal, activationCode: await issueActivationCode(q, crypto, terminal.id, nowS) };
}

/**
 * A new one-time activation code for a terminal not yet activated (an installer's code expired, or
 * was lost). Earlier unused codes of the terminal stop working. Refused once the terminal is active.
 */
export async function issueActivationCode(q: Queryable, crypto: CryptoProvider, terminalId: number, nowS: number): Promise<string> {
  const t = await q.one('SELECT status FROM terminals WHERE id = ?', [terminalId]);
  if (t === undefined) throw new ApiError('not_found', `terminal ${terminalId}`);
  if (t.status !== 'pending') throw new ApiError('conflict', `terminal ${terminalId} is ${String(t.status)}, not waiting for activation`);
  await q.run('UPDATE activation_codes SET expires_at = ? WHERE terminal_id = ? AND used_at IS NULL AND expires_at > ?', [
    nowS,
    terminalId,
    nowS,
  ]);
  // Twenty characters from a 32-letter alphabet: 100 bits, typed by an installer in groups of five.
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const raw = crypto.randomBytes(20);
  let code = '';
  for (let i = 0; i < raw.length; i++) code += (i > 0 && i % 5 === 0 ? '-' : '') + alphabet[(raw[i] as number) % 32];
  await q.run('INSERT INTO activation_codes (code_hash, terminal_id, expires_at, used_at) VALUES (?, ?, ?, NULL)', [
    hashCode(crypto, code),
    terminalId,
    nowS + ACTIVATION_TTL_S,
  ]);
  return code;
}

function hashCode(crypto: CryptoProvider, code: string): string {
  return toHex(crypto.sha256(new TextEncoder().encode(code.toUpperCase().replace(/[^A-Z0-9]/g, ''))));
}

/**
 * Activates a terminal: the one-time code must be valid and unused, the new key must prove itself,
 * and the terminal gets its certificate from the terminal-CA key.
 */
export async function activateTerminal(
  q: Queryable,
  crypto: CryptoProvider,
  keys: SigningKeys,
  o: { code: string; suite: SuiteName; publicKey: Uint8Array; proof: Uint8Array },
  nowS: number,
): Promise<{ terminal: TerminalRow; certificate: Uint8Array }> {
  const row = await q.one('SELECT terminal_id, expires_at, used_at FROM activation_codes WHERE code_hash = ?', [hashCode(crypto, o.code)]);
  if (row === undefined || row.used_at !== null || Number(row.expires_at) < nowS) throw new ApiError('activation_invalid');
  const ca = await keys.active('terminal_ca');
  if (o.suite !== ca.signer.suite) throw new ApiError('validation_failed', `terminal keys must be ${ca.signer.suite}`);
  if (o.publicKey.length !== PUBLIC_KEY_BYTES[o.suite] || !crypto.suite(o.suite).isValidPublicKey(o.publicKey)) {
    throw new ApiError('validation_failed', 'terminal public key');
  }
  if (!(await crypto.suite(o.suite).verify(o.publicKey, activationProofMessage(o.code, o.suite, o.publicKey), o.proof))) {
    throw new ApiError('bad_proof', 'the terminal did not prove it holds its key');
  }
  const t = toTerminal((await q.one('SELECT * FROM terminals WHERE id = ?', [Number(row.terminal_id)])) ?? {});
  const cert = await signTerminalCertificate(
    {
      caSuite: ca.signer.suite,
      caKeyId: ca.keyId,
      terminalSuite: o.suite,
      terminalId: t.id,
      merchantId: t.merchantId,
      scene: t.scene,
      campus: t.campus,
      location: t.location,
      notBefore: nowS - 60,
      notAfter: nowS + TERMINAL_CERT_VALIDITY_S,
      terminalPublicKey: o.publicKey,
    },
    ca.signer,
  );
  await q.run('UPDATE activation_codes SET used_at = ? WHERE code_hash = ?', [nowS, hashCode(crypto, o.code)]);
  await q.run('UPDATE terminals SET status = ?, suite = ?, public_key = ?, certificate = ?, activated_at = ? WHERE id = ?', [
    'active',
    o.suite,
    o.publicKey,
    cert.bytes,
    nowS,
    t.id,
  ]);
  return { terminal: { ...t, status: 'active', suite: o.suite, publicKey: o.publicKey, activatedAt: nowS }, certificate: cert.bytes };
}

export async function getTerminal(q: Queryable, id: number): Promise<TerminalRow> {
  const r = await q.one('SELECT * FROM terminals WHERE id = ?', [id]);
  if (r === undefined) throw new ApiError('not_found', `terminal ${id}`);
  return toTerminal(r);
}

export async function listTerminals(q: Queryable, merchantId?: number): Promise<TerminalRow[]> {
  const rows =
    merchantId === undefined
      ? await q.all('SELECT * FROM terminals ORDER BY id')
      : await q.all('SELECT * FROM terminals WHERE merchant_id = ? ORDER BY id', [merchantId]);
  return rows.map(toTerminal);
}

/** Revokes a terminal at `nowS`: it can no longer call the platform, and clearing refuses its records made from then on. */
export async function revokeTerminal(q: Queryable, id: number, nowS: number): Promise<void> {
  await getTerminal(q, id);
  await q.run('UPDATE terminals SET status = ?, revoked_at = COALESCE(revoked_at, ?) WHERE id = ?', ['revoked', nowS, id]);
}

/**
 * A terminal synced (lists or upload) at `nowS`: its last sync and last seen times, and the journal
 * head it reported with a lists sync (`head`), kept as the newest report.
 */
export async function touchTerminal(q: Queryable, id: number, nowS: number, o: { readonly head?: number } = {}): Promise<void> {
  if (o.head === undefined) await q.run('UPDATE terminals SET last_seen_at = ?, last_sync_at = ? WHERE id = ?', [nowS, nowS, id]);
  else await q.run('UPDATE terminals SET last_seen_at = ?, last_sync_at = ?, reported_head = ? WHERE id = ?', [nowS, nowS, o.head, id]);
}
