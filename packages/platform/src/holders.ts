/**
 * Account holders and what they agreed to: students, teachers and staff with a campus and a status;
 * the withholding agreement (versioned text in both languages) and each holder's acceptance, kept
 * with its time and device; the devices a holder registered. The holder id is also the pseudonymous
 * id terminals see in credentials: it carries no name.
 */
import { ID48_MAX, type Role, ROLES } from '@duet/protocol';
import type { Dialect, Migration, Queryable } from './db/db.js';
import { ApiError } from './errors.js';

export const HOLDER_STATUSES = ['active', 'blocked', 'graduated'] as const;
export type HolderStatus = (typeof HOLDER_STATUSES)[number];

export const holdersMigrations: Migration[] = [
  {
    id: 'holders/001-holders-agreements-devices',
    sql: (d: Dialect) => [
      `CREATE TABLE holders (
        id ${d.int} PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        campus ${d.int} NOT NULL,
        status TEXT NOT NULL,
        block_reason TEXT,
        created_at ${d.int} NOT NULL
      )`,
      `CREATE TABLE agreements (
        version ${d.int} PRIMARY KEY,
        text_en TEXT NOT NULL,
        text_zh TEXT NOT NULL,
        published_at ${d.int} NOT NULL
      )`,
      `CREATE TABLE agreement_acceptances (
        holder_id ${d.int} NOT NULL,
        version ${d.int} NOT NULL,
        accepted_at ${d.int} NOT NULL,
        device TEXT NOT NULL,
        PRIMARY KEY (holder_id, version)
      )`,
      `CREATE TABLE devices (
        id ${d.serialKey},
        holder_id ${d.int} NOT NULL,
        suite TEXT NOT NULL,
        public_key ${d.bytes} NOT NULL UNIQUE,
        label TEXT NOT NULL,
        status TEXT NOT NULL,
        registered_at ${d.int} NOT NULL
      )`,
      'CREATE INDEX devices_holder ON devices (holder_id)',
      `CREATE TABLE holder_events (
        id ${d.serialKey},
        holder_id ${d.int} NOT NULL,
        at ${d.int} NOT NULL,
        kind TEXT NOT NULL,
        by_staff TEXT NOT NULL,
        reason TEXT NOT NULL
      )`,
    ],
  },
];

export interface Holder {
  readonly id: number;
  readonly name: string;
  readonly role: Role;
  readonly campus: number;
  readonly status: HolderStatus;
  readonly blockReason: string | null;
}

function toHolder(r: Record<string, unknown>): Holder {
  return {
    id: Number(r.id),
    name: String(r.name),
    role: ROLES.find((x) => x === r.role) ?? 'student',
    campus: Number(r.campus),
    status: HOLDER_STATUSES.find((x) => x === r.status) ?? 'blocked',
    blockReason: r.block_reason === null || r.block_reason === undefined ? null : String(r.block_reason),
  };
}

export async function createHolder(
  q: Queryable,
  h: { id: number; name: string; role: Role; campus: number },
  nowS: number,
): Promise<Holder> {
  if (!Number.isSafeInteger(h.id) || h.id < 1 || h.id > ID48_MAX) throw new ApiError('validation_failed', `holder id ${h.id}`);
  const existing = await q.one('SELECT id FROM holders WHERE id = ?', [h.id]);
  if (existing !== undefined) throw new ApiError('conflict', `holder ${h.id} exists`);
  await q.run('INSERT INTO holders (id, name, role, campus, status, block_reason, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?)', [
    h.id,
    h.name,
    h.role,
    h.campus,
    'active',
    nowS,
  ]);
  return { id: h.id, name: h.name, role: h.role, campus: h.campus, status: 'active', blockReason: null };
}

export async function getHolder(q: Queryable, id: number): Promise<Holder> {
  const r = await q.one('SELECT * FROM holders WHERE id = ?', [id]);
  if (r === undefined) throw new ApiError('not_found', `holder ${id}`);
  return toHolder(r);
}

export async function listHolders(q: Queryable, o: { offset: number; limit: number; status?: HolderStatus }): Promise<Holder[]> {
  const rows =
    o.status === undefined
      ? await q.all('SELECT * FROM holders ORDER BY id LIMIT ? OFFSET ?', [o.limit, o.offset])
      : await q.all('SELECT * FROM holders WHERE status = ? ORDER BY id LIMIT ? OFFSET ?', [o.status, o.limit, o.offset]);
  return rows.map(toHolder);
}

/** Blocks or unblocks a holder with a recorded reason (DESIGN §16: wrongful blocking must be explainable and liftable). */
export async function setHolderStatus(
  q: Queryable,
  id: number,
  status: HolderStatus,
  reason: string,
  byStaff: string,
  nowS: number,
): Promise<Holder> {
  const h = await getHolder(q, id);
  await q.run('UPDATE holders SET status = ?, block_reason = ? WHERE id = ?', [status, status === 'active' ? null : reason, id]);
  await q.run('INSERT INTO holder_events (holder_id, at, kind, by_staff, reason) VALUES (?, ?, ?, ?, ?)', [
    id,
    nowS,
    `status:${status}`,
    byStaff,
    reason,
  ]);
  return { ...h, status, blockReason: status === 'active' ? null : reason };
}

export interface Agreement {
  readonly version: number;
  readonly textEn: string;
  readonly textZh: string;
  readonly publishedAt: number;
}

export async function publishAgreement(q: Queryable, textEn: string, textZh: string, nowS: number): Promise<Agreement> {
  const last = await q.one<{ v: number | null }>('SELECT MAX(version) AS v FROM agreements');
  const version = (last?.v ?? 0) + 1;
  await q.run('INSERT INTO agreements (version, text_en, text_zh, published_at) VALUES (?, ?, ?, ?)', [version, textEn, textZh, nowS]);
  return { version, textEn, textZh, publishedAt: nowS };
}

export async function currentAgreement(q: Queryable): Promise<Agreement> {
  const r = await q.one('SELECT * FROM agreements ORDER BY version DESC LIMIT 1');
  if (r === undefined) throw new ApiError('not_found', 'no withholding agreement has been published');
  return { version: Number(r.version), textEn: String(r.text_en), textZh: String(r.text_zh), publishedAt: Number(r.published_at) };
}

/** Records that a holder accepted a version, with when and on which device. Accepting the same version again changes nothing. */
export async function acceptAgreement(q: Queryable, holderId: number, version: number, device: string, nowS: number): Promise<void> {
  const current = await currentAgreement(q);
  if (version !== current.version) throw new ApiError('conflict', `agreement v${version} is not the current one (v${current.version})`);
  const done = await q.one('SELECT 1 AS x FROM agreement_acceptances WHERE holder_id = ? AND version = ?', [holderId, version]);
  if (done !== undefined) return;
  await q.run('INSERT INTO agreement_acceptances (holder_id, version, accepted_at, device) VALUES (?, ?, ?, ?)', [
    holderId,
    version,
    nowS,
    device.slice(0, 200),
  ]);
}

/** The holder's acceptance of the current agreement, or undefined. */
export async function acceptedCurrent(
  q: Queryable,
  holderId: number,
): Promise<{ version: number; acceptedAt: number; device: string } | undefined> {
  const r = await q.one(
    'SELECT a.version AS version, a.accepted_at AS accepted_at, a.device AS device FROM agreement_acceptances a WHERE a.holder_id = ? AND a.version = (SELECT MAX(version) FROM agreements)',
    [holderId],
  );
  return r === undefined ? undefined : { version: Number(r.version), acceptedAt: Number(r.accepted_at), device: String(r.device) };
}

/** Whether each holder may pay now (online authorization's holder check, for a batch at once). */
export async function holderStandings(
  q: Queryable,
  ids: readonly number[],
): Promise<ReadonlyMap<number, { readonly active: true } | { readonly active: false; readonly detail: string }>> {
  const out = new Map<number, { readonly active: true } | { readonly active: false; readonly detail: string }>();
  const unique = [...new Set(ids)];
  for (let i = 0; i < unique.length; i += 500) {
    const chunk = unique.slice(i, i + 500);
    const rows = await q.all(`SELECT id, status, block_reason FROM holders WHERE id IN (${chunk.map(() => '?').join(', ')})`, chunk);
    for (const r of rows) {
      out.set(Number(r.id), r.status === 'active' ? { active: true } : { active: false, detail: String(r.block_reason ?? r.status) });
    }
  }
  return out;
}
