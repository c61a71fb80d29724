/**
 * What terminals download: deny lists (full and delta, versioned, signed, expiring so a terminal
 * that stops syncing stops accepting: DESIGN §16 "stale lists are silent failures") and the signed
 * risk policy. Deny entries change when a holder is blocked or falls into arrears, a credential is
 * revoked or a card is lost; each change is published as a new version at once.
 */
import { type DenyEntry, type DenyType, DENY_TYPES, denyColumns, fen, type RiskPolicy, signDenyList, signRiskPolicy } from '@duet/protocol';
import type { Dialect, Migration, Queryable } from './db/db.js';
import { ApiError } from './errors.js';
import { currentSettings } from './settings.js';
import type { SigningKeys } from './signing-keys.js';

/** A terminal more than this many versions behind gets the full list rather than a chain of deltas. */
export const DELTA_CHAIN_MAX = 32;

export const listsMigrations: Migration[] = [
  {
    id: 'lists/001-deny-policy',
    sql: (d: Dialect) => [
      `CREATE TABLE deny_entries (
        type TEXT NOT NULL,
        id ${d.int} NOT NULL,
        reason TEXT NOT NULL,
        added_at ${d.int} NOT NULL,
        PRIMARY KEY (type, id)
      )`,
      `CREATE TABLE deny_changes (
        seq ${d.serialKey},
        type TEXT NOT NULL,
        id ${d.int} NOT NULL,
        op TEXT NOT NULL,
        at ${d.int} NOT NULL,
        published_in ${d.int}
      )`,
      `CREATE TABLE deny_lists (
        version ${d.int} PRIMARY KEY,
        issued_at ${d.int} NOT NULL,
        expires_at ${d.int} NOT NULL,
        full_bytes ${d.bytes} NOT NULL,
        delta_bytes ${d.bytes}
      )`,
      `CREATE TABLE policies (version ${d.int} PRIMARY KEY, settings_version ${d.int} NOT NULL, issued_at ${d.int} NOT NULL, bytes ${d.bytes} NOT NULL)`,
    ],
  },
];

/** Adds or removes a deny entry (recorded as a change for the next published delta). Idempotent. */
export async function setDenied(q: Queryable, type: DenyType, id: number, denied: boolean, reason: string, nowS: number): Promise<boolean> {
  const has = (await q.one('SELECT 1 AS x FROM deny_entries WHERE type = ? AND id = ?', [type, id])) !== undefined;
  if (has === denied) return false;
  if (denied) await q.run('INSERT INTO deny_entries (type, id, reason, added_at) VALUES (?, ?, ?, ?)', [type, id, reason, nowS]);
  else await q.run('DELETE FROM deny_entries WHERE type = ? AND id = ?', [type, id]);
  await q.run('INSERT INTO deny_changes (type, id, op, at, published_in) VALUES (?, ?, ?, ?, NULL)', [
    type,
    id,
    denied ? 'add' : 'remove',
    nowS,
  ]);
  return true;
}

export async function denyEntries(q: Queryable): Promise<Array<{ type: DenyType; id: number; reason: string; addedAt: number }>> {
  const rows = await q.all('SELECT type, id, reason, added_at FROM deny_entries ORDER BY type, id');
  return rows.map((r) => ({
    type: (DENY_TYPES.find((t) => t === r.type) ?? 'holder') as DenyType,
    id: Number(r.id),
    reason: String(r.reason),
    addedAt: Number(r.added_at),
  }));
}

/** Signs and stores the next deny-list version: the full list and the delta from the version before. */
export async function publishDenyList(
  q: Queryable,
  keys: SigningKeys,
  nowS: number,
): Promise<{ version: number; full: Uint8Array; delta?: Uint8Array }> {
  const { settings } = await currentSettings(q);
  const last = await q.one<{ v: number | null }>('SELECT MAX(version) AS v FROM deny_lists');
  const base = last?.v ?? 0;
  const version = base + 1;
  const signer = await keys.active('list_signer');
  const expiresAt = nowS + settings.maxListAgeS;
  const entries: DenyEntry[] = (await denyEntries(q)).map((e) => ({ type: e.type, id: e.id, op: 'add' }));
  const full = await signDenyList(
    {
      signer: { suite: signer.signer.suite, keyId: signer.keyId },
      kind: 'full',
      listVersion: version,
      baseVersion: 0,
      issuedAt: nowS,
      expiresAt,
      ...denyColumns(entries),
    },
    signer.signer,
  );
  let delta: Uint8Array | undefined;
  if (base > 0) {
    // The net change since the last version: the last op per (type, id) wins.
    const changes = await q.all('SELECT type, id, op FROM deny_changes WHERE published_in IS NULL ORDER BY seq');
    const net = new Map<string, DenyEntry>();
    for (const c of changes) {
      const type = DENY_TYPES.find((t) => t === c.type) ?? 'holder';
      net.set(`${type}:${Number(c.id)}`, { type, id: Number(c.id), op: c.op === 'remove' ? 'remove' : 'add' });
    }
    const d = await signDenyList(
      {
        signer: { suite: signer.signer.suite, keyId: signer.keyId },
        kind: 'delta',
        listVersion: version,
        baseVersion: base,
        issuedAt: nowS,
        expiresAt,
        ...denyColumns([...net.values()]),
      },
      signer.signer,
    );
    delta = d.bytes;
  }
  await q.run('UPDATE deny_changes SET published_in = ? WHERE published_in IS NULL', [version]);
  await q.run('INSERT INTO deny_lists (version, issued_at, expires_at, full_bytes, delta_bytes) VALUES (?, ?, ?, ?, ?)', [
    version,
    nowS,
    expiresAt,
    full.bytes,
    delta ?? null,
  ]);
  return delta === undefined ? { version, full: full.bytes } : { version, full: full.bytes, delta };
}

/**
 * What a terminal holding deny-list version `held` should install: nothing, the chain of deltas to
 * the newest version, or (too far behind, or never synced) the newest full list.
 */
export async function denyListUpdate(
  q: Queryable,
  held: number,
): Promise<{ version: number; lists: Uint8Array[]; kind: 'none' | 'delta' | 'full' }> {
  const last = await q.one<{ v: number | null }>('SELECT MAX(version) AS v FROM deny_lists');
  const newest = last?.v ?? 0;
  if (newest === 0) throw new ApiError('not_found', 'no deny list has been published yet');
  if (held === newest) return { version: newest, lists: [], kind: 'none' };
  if (held > 0 && held < newest && newest - held <= DELTA_CHAIN_MAX) {
    const rows = await q.all('SELECT version, delta_bytes FROM deny_lists WHERE version > ? ORDER BY version', [held]);
    if (rows.every((r) => r.delta_bytes instanceof Uint8Array))
      return { version: newest, lists: rows.map((r) => r.delta_bytes as Uint8Array), kind: 'delta' };
  }
  const full = await q.one('SELECT full_bytes FROM deny_lists WHERE version = ?', [newest]);
  return { version: newest, lists: [full?.full_bytes as Uint8Array], kind: 'full' };
}

export async function latestDenyList(q: Queryable): Promise<{ version: number; issuedAt: number; expiresAt: number } | undefined> {
  const r = await q.one('SELECT version, issued_at, expires_at FROM deny_lists ORDER BY version DESC LIMIT 1');
  return r === undefined ? undefined : { version: Number(r.version), issuedAt: Number(r.issued_at), expiresAt: Number(r.expires_at) };
}

/** Signs the current risk settings as the next policy version. */
export async function publishPolicy(q: Queryable, keys: SigningKeys, nowS: number): Promise<RiskPolicy> {
  const { version: settingsVersion, settings: s } = await currentSettings(q);
  const last = await q.one<{ v: number | null }>('SELECT MAX(version) AS v FROM policies');
  const version = (last?.v ?? 0) + 1;
  const signer = await keys.active('list_signer');
  const policy = await signRiskPolicy(
    {
      signer: { suite: signer.signer.suite, keyId: signer.keyId },
      policyVersion: version,
      issuedAt: nowS - 1,
      codeWindowS: s.codeWindowS,
      clockSkewS: s.clockSkewS,
      maxOfflineS: s.maxOfflineS,
      maxListAgeS: s.maxListAgeS,
      perPaymentMax: fen(s.terminalPerPaymentMaxFen),
      dayTotalMax: fen(s.dayTotalMaxFen),
      dayCountMax: s.dayCountMax,
      onlineBudgetMs: s.onlineBudgetMs,
      randomOnlinePer10k: 0,
      rules: s.scenes.map((r) => ({ scene: r.scene, roles: r.roles, campusOnly: r.campusOnly, perPaymentMax: fen(r.perPaymentMaxFen) })),
    },
    signer.signer,
  );
  await q.run('INSERT INTO policies (version, settings_version, issued_at, bytes) VALUES (?, ?, ?, ?)', [
    version,
    settingsVersion,
    nowS - 1,
    policy.bytes,
  ]);
  return policy;
}

export async function latestPolicy(q: Queryable): Promise<{ version: number; bytes: Uint8Array } | undefined> {
  const r = await q.one('SELECT version, bytes FROM policies ORDER BY version DESC LIMIT 1');
  return r === undefined ? undefined : { version: Number(r.version), bytes: r.bytes as Uint8Array };
}
