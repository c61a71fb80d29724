/**
 * Routes of the tamper-evident ledger (ledger-seal.ts, audit.ts): the witness keys of the school's
 * finance office, the signed roots, the chain data a witness recomputes them from, the witness's
 * countersignature, and the audit report. Who may call what:
 *   - register or list witness keys: operator admin or school finance;
 *   - read roots, chain pages and the audit: operator admin or school finance;
 *   - countersign a root: school finance only (the witness is the school, not the operator);
 *   - seal now and close a root over what is sealed: operator admin.
 */
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, SUITES } from '@duet/protocol';
import { type Static, Type } from '@sinclair/typebox';
import { auditLedgerFull, type LedgerAuditReport } from './audit.js';
import { nowS, type PlatformContext } from './context.js';
import type { Queryable, Row } from './db/db.js';
import { ApiError } from './errors.js';
import { b64, type Call, fromB64, type Route, staffOf } from './http.js';
import {
  type ChainEntry,
  closeRoot,
  type LedgerRoot,
  ROOT_COLUMNS,
  readChainEntries,
  rootOf,
  rowBytes,
  rowInt,
  rowText,
  sealLedger,
  witnessMessage,
  ZERO_HASH,
} from './ledger-seal.js';
import {
  LEDGER_CHAIN_PAGE_MAX,
  LEDGER_ROOT_ENTRIES_MAX,
  LEDGER_ROOTS_PAGE_MAX,
  LEDGER_SEAL_BATCH_MAX,
  LEDGER_SEAL_TXS_PER_RUN_MAX,
  LEDGER_WITNESS_NAME_MAX_CHARS,
} from './limits.js';

const READERS = ['operator_admin', 'school_finance'] as const;
const MAX_KEY_BYTES = Math.max(...Object.values(PUBLIC_KEY_BYTES));
const Base64 = (maxBytes: number) => Type.String({ maxLength: Math.ceil(maxBytes / 3) * 4 + 4, pattern: '^[A-Za-z0-9+/]*={0,2}$' });
const IdParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,14}$' }) }, { additionalProperties: false });
const WitnessKeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: LEDGER_WITNESS_NAME_MAX_CHARS }),
    suite: Type.Union(SUITES.map((s) => Type.Literal(s))),
    publicKey: Base64(MAX_KEY_BYTES),
  },
  { additionalProperties: false },
);
const RootsQuery = Type.Object(
  {
    from: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LEDGER_ROOTS_PAGE_MAX })),
    witnessed: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
  },
  { additionalProperties: false },
);
const ChainQuery = Type.Object(
  {
    from: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LEDGER_CHAIN_PAGE_MAX })),
    include: Type.Optional(Type.Union([Type.Literal('entries'), Type.Literal('hashes')])),
  },
  { additionalProperties: false },
);
const WitnessBody = Type.Object(
  { keyId: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), signature: Base64(SIGNATURE_BYTES) },
  { additionalProperties: false },
);
const CloseBody = Type.Object(
  { maxEntries: Type.Optional(Type.Integer({ minimum: 1, maximum: LEDGER_ROOT_ENTRIES_MAX })) },
  { additionalProperties: false },
);

/** A root as the API shows it: hashes and signatures in base64. */
export function rootView(r: LedgerRoot) {
  return {
    id: r.id,
    firstPosition: r.firstPosition,
    lastPosition: r.lastPosition,
    merkleRoot: b64(r.merkleRoot),
    prevRootHash: b64(r.prevRootHash),
    rootHash: b64(r.rootHash),
    signedAt: r.signedAtS,
    keyId: r.keyId,
    suite: r.suite,
    signature: b64(r.signature),
    witness:
      r.witnessSignature === null ? null : { keyId: r.witnessKeyId, signature: b64(r.witnessSignature), witnessedAt: r.witnessedAtS },
  };
}

/** An entry as a chain page shows it: every field its canonical bytes are made of (docs/ledger.md). */
export function entryView(e: ChainEntry) {
  return {
    id: e.id,
    postedAt: e.postedAtS,
    effectiveAt: e.effectiveAtS,
    kind: e.kind,
    reference: e.reference,
    createdBy: e.createdBy,
    memo: e.memo,
    reverses: e.reverses,
    postings: e.postings.map((p) => ({ line: p.line, account: p.account, amount: p.amount })),
  };
}

function witnessKeyView(r: Row) {
  return {
    id: rowInt(r.id, 'id'),
    name: rowText(r.name, 'name'),
    suite: rowText(r.suite, 'suite'),
    publicKey: b64(rowBytes(r.public_key, 'public_key')),
    addedBy: rowText(r.added_by, 'added_by'),
    addedAt: rowInt(r.added_at, 'added_at'),
    status: rowText(r.status, 'status'),
  };
}

async function getRoot(q: Queryable, id: number): Promise<LedgerRoot> {
  const r = await q.one(`SELECT ${ROOT_COLUMNS} FROM ledger_roots r LEFT JOIN platform_keys k ON k.key_id = r.key_id WHERE r.id = ?`, [id]);
  if (r === undefined) throw new ApiError('not_found', `ledger root ${id}`);
  return rootOf(r);
}

async function chainPage(ctx: PlatformContext, q: Static<typeof ChainQuery>) {
  const limit = q.limit ?? LEDGER_CHAIN_PAGE_MAX;
  const to = q.from + limit - 1;
  const rows = await ctx.db.all(
    'SELECT position, entry_id, hash FROM ledger_chain WHERE position >= ? AND position <= ? ORDER BY position',
    [q.from - 1, to],
  );
  // The hash before the page, the chain a witness recomputes from: zeros before position 1.
  const head = rows[0];
  let before: Uint8Array | null = null;
  if (q.from === 1) before = ZERO_HASH;
  else if (head !== undefined && rowInt(head.position, 'position') === q.from - 1) before = rowBytes(head.hash, 'hash');
  const page = rows.filter((r) => rowInt(r.position, 'position') >= q.from);
  const withEntries = (q.include ?? 'entries') === 'entries';
  const entries = withEntries
    ? await readChainEntries(
        ctx.db,
        page.map((r) => rowInt(r.entry_id, 'entry id')),
      )
    : undefined;
  return {
    from: q.from,
    previousHash: before === null ? null : b64(before),
    positions: page.map((r) => {
      const entryId = rowInt(r.entry_id, 'entry id');
      const base = { position: rowInt(r.position, 'position'), entryId, hash: b64(rowBytes(r.hash, 'hash')) };
      if (entries === undefined) return base;
      const e = entries.get(entryId);
      return { ...base, entry: e === undefined ? null : entryView(e) };
    }),
  };
}

async function countersign(call: Call) {
  staffOf(call, ['school_finance']);
  const db = call.ctx.db;
  const id = Number(call.params.id);
  const b = call.body as Static<typeof WitnessBody>;
  const signature = fromB64(b.signature, 'signature', SIGNATURE_BYTES);
  const root = await getRoot(db, id);
  const key = await db.one('SELECT id, suite, public_key, status FROM ledger_witness_keys WHERE id = ?', [b.keyId]);
  if (key === undefined) throw new ApiError('not_found', `witness key ${b.keyId}`);
  const suite = SUITES.find((s) => s === key.suite);
  if (suite === undefined) throw new Error(`ledger: witness key ${b.keyId} has an unknown suite`);
  // Verified before anything else: a signature that does not verify is refused whatever the root's state.
  if (!(await call.ctx.crypto.suite(suite).verify(rowBytes(key.public_key, 'public_key'), witnessMessage(root.rootHash), signature)))
    throw new ApiError('bad_countersignature', `root ${id}, witness key ${b.keyId}`);
  if (root.witnessSignature === null) {
    if (key.status !== 'active') throw new ApiError('conflict', `witness key ${b.keyId} is ${String(key.status)}`);
    await db.run(
      'UPDATE ledger_roots SET witness_key_id = ?, witness_signature = ?, witnessed_at = ? WHERE id = ? AND witness_signature IS NULL',
      [b.keyId, signature, nowS(call.ctx), id],
    );
  }
  // Countersigned now, before by this key (idempotent: the first countersignature stays), or by another key.
  const after = await getRoot(db, id);
  if (after.witnessKeyId !== b.keyId)
    throw new ApiError('conflict', `root ${id} is already countersigned by witness key ${after.witnessKeyId}`);
  return rootView(after);
}

export function ledgerRoutes(): Route[] {
  // Concurrent audit requests share one run: it reads the whole ledger.
  let audit: Promise<LedgerAuditReport> | undefined;
  return [
    {
      method: 'POST',
      url: '/v1/ledger/witness-keys',
      access: { kind: 'staff', roles: READERS },
      summary: "Register the witness's public key (idempotent per key) / 登记见证方公钥",
      tags: ['ledger'],
      body: WitnessKeyBody,
      handle: async (call) => {
        const staff = staffOf(call);
        const b = call.body as Static<typeof WitnessKeyBody>;
        const publicKey = fromB64(b.publicKey, 'publicKey', MAX_KEY_BYTES);
        if (!call.ctx.crypto.suite(b.suite).isValidPublicKey(publicKey))
          throw new ApiError('validation_failed', `publicKey is not a ${b.suite} public key`);
        await call.ctx.db.run(
          `INSERT INTO ledger_witness_keys (name, suite, public_key, added_by, added_at, status) VALUES (?, ?, ?, ?, ?, 'active')
           ON CONFLICT (public_key) DO NOTHING`,
          [b.name, b.suite, publicKey, staff.username, nowS(call.ctx)],
        );
        const row = await call.ctx.db.one('SELECT * FROM ledger_witness_keys WHERE public_key = ?', [publicKey]);
        if (row === undefined) throw new Error('ledger: witness key vanished right after insert');
        if (row.suite !== b.suite) throw new ApiError('conflict', `this public key is registered as ${String(row.suite)}`);
        return witnessKeyView(row);
      },
    },
    {
      method: 'GET',
      url: '/v1/ledger/witness-keys',
      access: { kind: 'staff', roles: READERS },
      summary: 'Registered witness keys / 已登记的见证密钥',
      tags: ['ledger'],
      handle: async (call) => ({ keys: (await call.ctx.db.all('SELECT * FROM ledger_witness_keys ORDER BY id')).map(witnessKeyView) }),
    },
    {
      method: 'GET',
      url: '/v1/ledger/roots',
      access: { kind: 'staff', roles: READERS },
      summary: 'Signed ledger roots, oldest first / 已签名的账本根',
      tags: ['ledger'],
      query: RootsQuery,
      handle: async (call) => {
        const q = call.query as Static<typeof RootsQuery>;
        const filter = q.witnessed === undefined ? '' : ` AND r.witness_signature IS ${q.witnessed === 'true' ? 'NOT ' : ''}NULL`;
        const rows = await call.ctx.db.all(
          `SELECT ${ROOT_COLUMNS} FROM ledger_roots r LEFT JOIN platform_keys k ON k.key_id = r.key_id WHERE r.id >= ?${filter} ORDER BY r.id LIMIT ?`,
          [q.from ?? 1, q.limit ?? LEDGER_ROOTS_PAGE_MAX],
        );
        const last = await call.ctx.db.one('SELECT COALESCE(MAX(id), 0) AS id FROM ledger_roots');
        return { roots: rows.map(rootOf).map(rootView), lastRootId: rowInt(last?.id ?? 0, 'root id') };
      },
    },
    {
      method: 'GET',
      url: '/v1/ledger/chain',
      access: { kind: 'staff', roles: READERS },
      summary: 'Chain hashes and entries of a position range, to recompute them / 哈希链区间及其分录',
      tags: ['ledger'],
      query: ChainQuery,
      handle: async (call) => chainPage(call.ctx, call.query as Static<typeof ChainQuery>),
    },
    {
      method: 'POST',
      url: '/v1/ledger/roots/:id/witness',
      access: { kind: 'staff', roles: ['school_finance'] },
      summary: "The witness's countersignature of a root, verified before it is stored / 见证方副署账本根",
      tags: ['ledger'],
      params: IdParams,
      body: WitnessBody,
      handle: countersign,
    },
    {
      method: 'POST',
      url: '/v1/ledger/roots',
      access: { kind: 'staff', roles: ['operator_admin'] },
      summary: 'Seal what is committed and close a root over the sealed positions not rooted yet / 立即封存并生成账本根',
      tags: ['ledger'],
      body: CloseBody,
      handle: async (call) => {
        const t = nowS(call.ctx);
        let sealed = 0;
        for (let i = 0; i < LEDGER_SEAL_TXS_PER_RUN_MAX; i++) {
          const r = await sealLedger(call.ctx.db, call.ctx.crypto, t, { fullScan: true });
          sealed += r.sealed;
          if (r.sealed < LEDGER_SEAL_BATCH_MAX) break;
        }
        const maxEntries = (call.body as Static<typeof CloseBody> | undefined)?.maxEntries;
        const root = await closeRoot(call.ctx.db, call.ctx.crypto, call.ctx.keys, t, maxEntries === undefined ? {} : { maxEntries });
        return { sealed, root: root === undefined ? null : rootView(root) };
      },
    },
    {
      method: 'GET',
      url: '/v1/ledger/audit',
      access: { kind: 'staff', roles: READERS },
      summary: 'Audit the whole ledger: balances, hash chain, roots and signatures / 审计整个账本',
      tags: ['ledger'],
      handle: async (call) => {
        audit ??= auditLedgerFull(call.ctx.db, call.ctx.crypto, { nowS: nowS(call.ctx) }).finally(() => {
          audit = undefined;
        });
        return audit;
      },
    },
  ];
}
