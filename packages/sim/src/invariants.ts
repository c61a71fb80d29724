/**
 * The invariants every run must keep, checked after healing against the platform's own tables and
 * the terminals' own view. Each returns words naming the first few offenders when it fails.
 */
import { auditLedgerFull, LedgerSealer } from '@duet/platform';
import { field, isNum } from '@duet/protocol/client';
import { arrearsOf } from './attacks.js';
import type { AttackKind, AttackTally, Invariant } from './result.js';
import type { BreakClearing, Sim } from './run.js';

export interface InvariantReport {
  readonly list: Invariant[];
  readonly cleared: number;
  readonly lost: number;
  readonly doubleCounted: number;
  readonly booksBalanced: boolean;
  readonly auditOk: boolean;
  readonly lossesByCause: { [cause: string]: number };
}

/** Sealing runs at most at the end (each seals a bounded batch; a default run needs a handful). */
const SEAL_RUNS_MAX = 10_000;

/** Offenders named in an invariant's words at most. */
const DETAIL_ITEMS_MAX = 5;

export async function checkInvariants(
  sim: Sim,
  attacks: { readonly [K in AttackKind]?: AttackTally },
  _break: BreakClearing | undefined,
): Promise<InvariantReport> {
  const once = await clearedOnce(sim);
  const lost = await nothingLost(sim);
  const books = await booksAndAudit(sim);
  const missed = Object.entries(attacks).filter(([, a]) => a.missed > 0);
  const bound = await lossBound(sim);
  const list: Invariant[] = [
    {
      name: 'accepted_cleared_once',
      ok: once.notCleared.length === 0 && once.double.length === 0,
      detail: words([...once.notCleared.map((x) => `${x} not cleared`), ...once.double.map((x) => `${x} counted more than once`)]),
    },
    { name: 'nothing_lost', ok: lost.length === 0, detail: words(lost) },
    { name: 'books_balanced', ok: books.balanced, detail: books.balanced ? '' : books.detail },
    { name: 'audit', ok: books.auditOk, detail: books.auditOk ? '' : books.detail },
    {
      name: 'attacks_caught',
      ok: missed.length === 0,
      detail: words(missed.map(([k, a]) => `${k}: ${a.missed} of ${a.attempted} neither declined nor flagged`)),
    },
    {
      name: 'loss_within_bound',
      ok: bound.over.length === 0,
      detail: words(bound.over.map((o) => `holder ${o.holder} lost ${o.fen} fen, bound ${bound.boundFen}`)),
    },
  ];
  return {
    list,
    cleared: once.cleared,
    lost: once.notCleared.length,
    doubleCounted: once.double.length,
    booksBalanced: books.balanced,
    auditOk: books.auditOk,
    lossesByCause: bound.byCause,
  };
}

function words(items: readonly string[]): string {
  if (items.length === 0) return '';
  const more = items.length > DETAIL_ITEMS_MAX ? ` (and ${items.length - DETAIL_ITEMS_MAX} more)` : '';
  return items.slice(0, DETAIL_ITEMS_MAX).join('; ') + more;
}

/** Every payment a window accepted is cleared (posted, linked to its online approval, or an access event), with one ledger entry at most. */
async function clearedOnce(sim: Sim): Promise<{ cleared: number; notCleared: string[]; double: string[] }> {
  const db = sim.world.platform.db;
  const notCleared: string[] = [];
  const double: string[] = [];
  let cleared = 0;
  for (const a of sim.tally.accepted) {
    const ref = `record:${a.terminalId}:${a.sequence}`;
    const rec = await db.one<{ cleared: string }>('SELECT cleared FROM records WHERE terminal_id = ? AND sequence = ?', [
      a.terminalId,
      a.sequence,
    ]);
    const n = await db.one<{ n: number }>('SELECT COUNT(*) AS n FROM ledger_entries WHERE reference = ? OR reference LIKE ?', [
      ref,
      `${ref}:%`,
    ]);
    const entries = Number(n?.n ?? 0);
    const state = rec?.cleared;
    const ok = (state === 'posted' && entries >= 1) || state === 'linked' || (state === 'access' && a.kind === 'access');
    if (ok) cleared++;
    else notCleared.push(`${ref} (${state ?? 'absent'})`);
    if (entries > 1) double.push(ref);
  }
  return { cleared, notCleared, double };
}

/** Every record a terminal was told the platform holds is there, and every honest terminal's queue is empty. */
async function nothingLost(sim: Sim): Promise<string[]> {
  const db = sim.world.platform.db;
  const out: string[] = [];
  for (const t of sim.world.terminals) {
    const n = await db.one<{ n: number }>('SELECT COUNT(*) AS n FROM records WHERE terminal_id = ? AND sequence <= ?', [t.id, t.ackedSeen]);
    if (Number(n?.n ?? 0) !== t.ackedSeen)
      out.push(`terminal ${t.id} was acknowledged through ${t.ackedSeen} but the platform holds ${n?.n ?? 0} of them`);
    if (!t.rogue && t.terminal.headSequence !== t.terminal.ackedSequence)
      out.push(`terminal ${t.id} still holds ${t.terminal.headSequence - t.terminal.ackedSequence} records after healing`);
  }
  return out;
}

/** Seals the ledger as the platform's sealer would, then runs the audit `duet audit` runs. */
async function booksAndAudit(sim: Sim): Promise<{ balanced: boolean; auditOk: boolean; detail: string }> {
  const p = sim.world.platform;
  const sealer = new LedgerSealer(p.db, p.ctx.crypto, p.keys, sim.queue, {});
  // Each run seals a bounded batch: run until nothing is left to seal.
  for (let i = 0; i < SEAL_RUNS_MAX && (await sealer.runOnce()).sealed > 0; i++);
  const report = await auditLedgerFull(p.db, p.ctx.crypto, { nowS: Math.floor(sim.queue.nowMs() / 1000) });
  const passed = (c: string) => report.checks.find((x) => x.check === c)?.status === 'passed';
  const detail = report.break === null ? '' : `${report.break.code}: ${report.break.en}`;
  return { balanced: passed('entries_balance') && passed('balances_match_postings'), auditOk: report.ok, detail };
}

/**
 * The policy's promise: no holder costs the operator more than the worst-case offline loss the
 * settings preview states. A holder's unrecovered loss is what the loss reserve paid for their
 * records plus what they still owe after an advance.
 */
async function lossBound(
  sim: Sim,
): Promise<{ boundFen: number; over: { holder: number; fen: number }[]; byCause: { [c: string]: number } }> {
  const { world } = sim;
  const current = await world.op('GET', '/v1/settings');
  const settings = (current as { settings?: unknown }).settings;
  const preview = await world.op('POST', '/v1/settings/preview', { settings });
  const worst = (preview as { worstCase?: unknown }).worstCase;
  const boundFen = field(worst, 'totalFen', isNum);
  const rows = await world.platform.db.all<{ holder_id: number | null; reason: string; paid: number; bears: string; amount: number }>(
    'SELECT holder_id, reason, paid, bears, amount FROM clearing_flags',
  );
  const perHolder = new Map<number, number>();
  const byCause: { [c: string]: number } = {};
  const owing = new Set<number>();
  for (const r of rows) {
    if (r.holder_id === null) continue;
    const holder = Number(r.holder_id);
    if (Number(r.paid) === 1 && r.bears === 'loss_reserve') {
      perHolder.set(holder, (perHolder.get(holder) ?? 0) + Number(r.amount));
      byCause[r.reason] = (byCause[r.reason] ?? 0) + Number(r.amount);
    }
    if (r.reason === 'advance') owing.add(holder);
  }
  for (const h of [...owing].sort((a, b) => a - b)) {
    const owed = await arrearsOf(sim, h);
    perHolder.set(h, (perHolder.get(h) ?? 0) + owed);
    byCause.arrears_outstanding = (byCause.arrears_outstanding ?? 0) + owed;
  }
  const over = [...perHolder.entries()].filter(([, v]) => v > boundFen).map(([holder, fen]) => ({ holder, fen }));
  return { boundFen, over, byCause };
}
