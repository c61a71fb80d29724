/**
 * The attackers. Each tries its trick at the real terminals during the rush (mostly while the
 * internet is down, when a terminal cannot ask anyone), and its outcome is read from what really
 * happened: the terminal's decision, then clearing's flags and intake's alarms on the platform.
 * Nothing is assumed caught.
 */
import { type Credential, codeToText, fen, makeCode, type Signer, signCredential, textToCodeBytes } from '@duet/protocol';
import { seedCredential } from '@duet/platform';
import type { Wallet } from '@duet/wallet';
import type { Random } from './random.js';
import type { AttackKind, AttackTally } from './result.js';
import type { Sim } from './run.js';
import { enrolWallet, type SimHolder, type SimTerminal } from './world.js';

const MINUTE_MS = 60_000;
/** The skewed terminal's clock runs this far behind: hours, as the issue asks. */
const SKEW_MS = -6 * 3_600_000;
/** A record's amount field: after header (1), terminal id (4), sequence (4), previous hash (32), time (4), kind/path/medium/outcome (4). */
const RECORD_AMOUNT_OFFSET = 49;

interface Attempt {
  readonly kind: AttackKind;
  readonly terminal: SimTerminal;
  readonly accepted: boolean;
  readonly reason: string | undefined;
  readonly sequence: number | undefined;
  /** The first use of a replayed code: clearing may flag either one. */
  readonly related?: { readonly terminalId: number; readonly sequence: number };
}

export class Attackers {
  /** Holders the attackers use, kept out of the ordinary lunch crowd. */
  readonly reserved = new Set<number>();
  private readonly attempts: Attempt[] = [];
  private readonly revoked: SimHolder;
  private readonly overspender: SimHolder;
  private readonly payer: SimHolder;
  private readonly expired: SimHolder;
  private readonly wallets = new Map<number, Wallet>();
  private expiredCredential: { credential: Credential; device: Signer } | undefined;
  /** A valid credential whose device key the attacker holds, to sign a code at a skewed terminal's wrong time. */
  private ownCredential: { credential: Credential; device: Signer } | undefined;
  private forger: { issuer: Signer; device: Signer } | undefined;
  private counter = 1;
  private overspendAccepted = 0;
  private overspendTried = false;

  constructor(
    private readonly sim: Sim,
    private readonly r: Random,
  ) {
    const ok = sim.world.holders.filter((h) => h.arrearsFen === 0);
    const byFunds = [...ok].sort((a, b) => funds(a) - funds(b) || a.id - b.id);
    const pick = (h: SimHolder | undefined): SimHolder => {
      if (h === undefined) throw new RangeError('attacks need at least four holders not in arrears');
      this.reserved.add(h.id);
      return h;
    };
    this.overspender = pick(byFunds[0]);
    this.revoked = pick(
      byFunds.find((h) => !this.reserved.has(h.id) && funds(h) >= 10_000) ?? byFunds.find((h) => !this.reserved.has(h.id)),
    );
    this.payer = pick([...byFunds].reverse().find((h) => !this.reserved.has(h.id)));
    this.expired = pick(byFunds.find((h) => !this.reserved.has(h.id)));
  }

  /** When the campus is made (days before the rush): a credential that will have expired by lunch. */
  async issueEarly(): Promise<void> {
    const { world, queue } = this.sim;
    const device = await world.crypto.suite('p256').generate();
    const credential = await seedCredential(
      world.platform.db,
      world.platform.keys,
      this.expired.id,
      device,
      Math.floor(queue.nowMs() / 1000),
    );
    this.expiredCredential = { credential, device };
  }

  /** Wallets of the attacking holders, the forger's keys and a credential whose key the attacker holds, on the morning of the rush. */
  async prepare(): Promise<void> {
    const { world, queue } = this.sim;
    for (const h of [this.revoked, this.overspender, this.payer]) {
      const w = await enrolWallet(world, queue, h.id);
      if (w !== undefined) this.wallets.set(h.id, w);
    }
    const suite = world.crypto.suite('p256');
    this.forger = { issuer: await suite.generate(), device: await suite.generate() };
    const device = await suite.generate();
    const credential = await seedCredential(
      world.platform.db,
      world.platform.keys,
      this.expired.id,
      device,
      Math.floor(queue.nowMs() / 1000),
    );
    this.ownCredential = { credential, device };
  }

  schedule(): void {
    const { scenario, startMs, queue } = this.sim;
    const outage = scenario.outages.find((w) => w.from + 1 < scenario.minutes);
    const from = outage === undefined ? Math.min(1, scenario.minutes - 1) : outage.from + 1;
    const span = Math.max(1, Math.min(outage?.to ?? scenario.minutes, scenario.minutes) - from);
    const at = (fraction: number, run: () => Promise<void>): void => {
      queue.at(startMs + (from + span * fraction) * MINUTE_MS, async () => {
        if (!this.sim.healing) await run();
      });
    };
    at(0, () => this.revoke());
    at(0.1, () => this.payRevoked());
    at(0.15, () => this.overspend());
    at(0.2, () => this.replay());
    at(0.25, () => this.forge());
    at(0.3, () => this.tamperCode());
    at(0.35, () => this.skewAndExpired());
    at(0.4, () => this.journalAttack());
    at(0.5, () => this.replay());
    at(0.6, () => this.payRevoked());
    at(0.7, () => this.forge());
    at(0.8, () => this.replay());
  }

  private canteens(): SimTerminal[] {
    const c = this.sim.world.terminals.filter((t) => !t.rogue && t.scene === 'canteen');
    return c.length > 0 ? c : this.sim.world.terminals.filter((t) => !t.rogue);
  }

  private async attempt(kind: AttackKind, t: SimTerminal, amount: number, text: string, related?: Attempt['related']): Promise<Attempt> {
    const d = await this.sim.pay(t, amount, text);
    const a: Attempt = {
      kind,
      terminal: t,
      accepted: d.accepted,
      reason: d.reason,
      sequence: d.sequence,
      ...(related !== undefined ? { related } : {}),
    };
    this.attempts.push(a);
    this.sim.tally.trace(`${this.sim.stamp()} attack ${kind} t${t.id} ${amount} ${d.accepted ? `ok ${d.sequence}` : `no ${d.reason}`}`);
    return a;
  }

  /** The operator blocks a holder (a lost phone reported) while the terminals are cut off. */
  private async revoke(): Promise<void> {
    const { world } = this.sim;
    await world.op('POST', `/v1/holders/${this.revoked.id}/block`, { reason: 'sim: reported lost' });
    this.sim.tally.trace(`${this.sim.stamp()} operator blocks h${this.revoked.id}`);
  }

  /** The blocked holder's phone keeps paying at terminals whose deny list is older than the block. */
  private async payRevoked(): Promise<void> {
    const w = this.wallets.get(this.revoked.id);
    if (w === undefined) return;
    const t = this.r.pick(this.canteens());
    await this.attempt('revoked_credential', t, 1_500, (await w.nextCode()).text);
  }

  /**
   * A holder with little money pays the most each payment may be, again and again, at window after
   * window, while offline: each terminal applies the credential's limits alone, so together they
   * accept more than the holder has. Clearing must turn the difference into an advance (arrears).
   */
  private async overspend(): Promise<void> {
    const w = this.wallets.get(this.overspender.id);
    if (w === undefined) return;
    this.overspendTried = true;
    for (const t of this.canteens().slice(0, 6)) {
      for (let i = 0; i < 3; i++) {
        const code = await w.nextCode();
        const amount = Math.min(code.code.credential.limits.perPayment, 4_500);
        const d = await this.sim.pay(t, amount, code.text);
        if (d.accepted) this.overspendAccepted += amount;
        this.sim.tally.trace(
          `${this.sim.stamp()} attack overspend_offline t${t.id} ${amount} ${d.accepted ? `ok ${d.sequence}` : `no ${d.reason}`}`,
        );
      }
    }
  }

  /** A code someone just paid with, shown again at another window (a photo of the screen). */
  private async replay(): Promise<void> {
    const seen = this.sim.recentCodes.filter((c) => c.sequence !== undefined && c.terminalId !== undefined);
    if (seen.length === 0) return;
    const c = this.r.pick(seen);
    const others = this.canteens().filter((t) => t.index !== c.window);
    const t = others.length > 0 ? this.r.pick(others) : this.r.pick(this.canteens());
    await this.attempt('replay_other_window', t, c.amount, c.text, { terminalId: c.terminalId ?? 0, sequence: c.sequence ?? 0 });
  }

  /** A credential signed by the attacker's own key, posing as the platform's issuer. */
  private async forge(): Promise<void> {
    const w = this.wallets.get(this.payer.id);
    const f = this.forger;
    if (w === undefined || f === undefined) return;
    const real = (await w.nextCode()).code.credential;
    const nowS = Math.floor(this.sim.queue.nowMs() / 1000);
    const forged = await signCredential(
      {
        ...real,
        serial: real.serial + 1_000_000,
        devicePublicKey: f.device.publicKey,
        limits: { ...real.limits, offlineTotal: fen(1_000_000) },
      },
      f.issuer,
    );
    const code = await makeCode(forged, f.device, nowS, this.counter++);
    await this.attempt('forged_code', this.r.pick(this.canteens()), 2_000, codeToText(code));
  }

  /** A genuine code with one byte changed (the counter or the credential). */
  private async tamperCode(): Promise<void> {
    const w = this.wallets.get(this.payer.id);
    if (w === undefined) return;
    const bytes = textToCodeBytes((await w.nextCode()).text);
    const at = 1 + this.r.int(bytes.length - 1);
    bytes[at] = (bytes[at] ?? 0) ^ (1 << this.r.int(8));
    await this.attempt('tampered_code', this.r.pick(this.canteens()), 1_200, codeToText({ bytes }));
  }

  /**
   * A terminal whose clock runs six hours slow, where the attacker's device signs its code at the
   * terminal's wrong time; and a credential that expired a day ago, shown at another window.
   */
  private async skewAndExpired(): Promise<void> {
    const e = this.expiredCredential;
    const own = this.ownCredential;
    const c = this.canteens();
    const t = c[c.length - 1];
    if (e === undefined || own === undefined || t === undefined) return;
    t.skewMs = SKEW_MS;
    this.sim.tally.trace(`${this.sim.stamp()} attack skews t${t.id} by ${SKEW_MS / 3_600_000} h`);
    const skewedS = Math.floor(t.clock.nowMs() / 1000);
    await this.attempt('skewed_terminal_clock', t, 1_000, codeToText(await makeCode(own.credential, own.device, skewedS, this.counter++)));
    const nowS = Math.floor(this.sim.queue.nowMs() / 1000);
    const other = this.r.pick(c.filter((x) => x !== t).length > 0 ? c.filter((x) => x !== t) : c);
    await this.attempt('expired_credential', other, 1_000, codeToText(await makeCode(e.credential, e.device, nowS, this.counter++)));
  }

  /** Dishonest merchants pay themselves at their own tills, then delete or alter a record before upload. */
  private async journalAttack(): Promise<void> {
    const w = this.wallets.get(this.payer.id);
    const tills = this.sim.world.terminals.filter((t) => t.rogue);
    if (w === undefined || tills.length < 2) return;
    const [del, alt] = tills as [SimTerminal, SimTerminal];
    const pay3 = async (t: SimTerminal, kind: AttackKind): Promise<Attempt | undefined> => {
      let second: Attempt | undefined;
      for (let i = 0; i < 3; i++) {
        const d = await this.sim.pay(t, 1_500, (await w.nextCode()).text);
        this.sim.tally.trace(`${this.sim.stamp()} rogue t${t.id} ${d.accepted ? `ok ${d.sequence}` : `no ${d.reason}`}`);
        if (i === 1) second = { kind, terminal: t, accepted: d.accepted, reason: d.reason, sequence: d.sequence };
      }
      return second;
    };
    const a = await pay3(del, 'journal_record_deleted');
    const b = await pay3(alt, 'journal_record_altered');
    if (a?.sequence !== undefined) {
      del.journal.tamper(a.sequence, () => undefined);
      this.attempts.push(a);
    }
    if (b?.sequence !== undefined) {
      alt.journal.tamper(b.sequence, (bytes) => {
        const out = bytes.slice();
        const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
        v.setUint32(RECORD_AMOUNT_OFFSET, v.getUint32(RECORD_AMOUNT_OFFSET) + 10_000);
        return out;
      });
      this.attempts.push(b);
    }
    this.sim.tally.trace(`${this.sim.stamp()} rogue journals tampered`);
  }

  /** Every attempt's outcome, read from the platform after healing. */
  async resolve(): Promise<{ [K in AttackKind]?: AttackTally }> {
    const db = this.sim.world.platform.db;
    const out: { [K in AttackKind]?: { attempted: number; declined: number; flagged: number; missed: number; unrecoveredFen: number } } =
      {};
    const get = (k: AttackKind) => {
      out[k] ??= { attempted: 0, declined: 0, flagged: 0, missed: 0, unrecoveredFen: 0 };
      return out[k];
    };
    const flagsOf = async (terminalId: number, sequence: number) =>
      (
        await db.all<{ reason: string; paid: number; bears: string; amount: number }>(
          'SELECT reason, paid, bears, amount FROM clearing_flags WHERE terminal_id = ? AND sequence = ?',
          [terminalId, sequence],
        )
      ).map((f) => ({ ...f, key: `${terminalId}:${sequence}:${f.reason}` }));
    // A record's loss is counted once, even when two replays of one code both point at it.
    const counted = new Set<string>();
    for (const a of this.attempts) {
      const g = get(a.kind);
      g.attempted++;
      if (!a.accepted || a.sequence === undefined) {
        g.declined++;
        continue;
      }
      const flags = [...(await flagsOf(a.terminal.id, a.sequence))];
      if (a.related !== undefined) flags.push(...(await flagsOf(a.related.terminalId, a.related.sequence)));
      const rec = await db.one<{ cleared: string }>('SELECT cleared FROM records WHERE terminal_id = ? AND sequence = ?', [
        a.terminal.id,
        a.sequence,
      ]);
      let caught = flags.length > 0 || rec?.cleared === 'refused';
      if (a.terminal.rogue) {
        // Intake refused the altered record or sees the gap the deleted one left: an alarm, and nothing after it is taken.
        const alarm = await db.one('SELECT id FROM intake_flags WHERE terminal_id = ?', [a.terminal.id]);
        const ack = await db.one<{ acked_through: number }>('SELECT acked_through FROM intake_acks WHERE terminal_id = ?', [a.terminal.id]);
        caught ||= alarm !== undefined || Number(ack?.acked_through ?? 0) < a.sequence;
      }
      if (caught) g.flagged++;
      else g.missed++;
      for (const f of flags) {
        if (Number(f.paid) !== 1 || f.bears !== 'loss_reserve' || counted.has(f.key)) continue;
        counted.add(f.key);
        g.unrecoveredFen += Number(f.amount);
      }
    }
    if (this.overspendTried) {
      const g = get('overspend_offline');
      g.attempted++;
      const advances = await db.all<{ amount: number }>("SELECT amount FROM clearing_flags WHERE reason = 'advance' AND holder_id = ?", [
        this.overspender.id,
      ]);
      if (this.overspendAccepted <= funds(this.overspender)) g.declined++;
      else if (advances.length > 0) g.flagged++;
      else g.missed++;
      g.unrecoveredFen += await arrearsOf(this.sim, this.overspender.id);
    }
    return out;
  }
}

function funds(h: SimHolder): number {
  return h.cashFen + h.subsidyFen + h.creditLineFen;
}

/** What a holder owes the operator now (the advance not yet repaid), fen, from the holder's standing. */
export async function arrearsOf(sim: Sim, holderId: number): Promise<number> {
  const h = await sim.world.op('GET', `/v1/holders/${holderId}`);
  const arrears = (h as { purses?: { arrears?: unknown } }).purses?.arrears;
  return typeof arrears === 'number' ? arrears : 0;
}
