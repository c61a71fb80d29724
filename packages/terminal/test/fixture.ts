/**
 * A complete little world for terminal tests: platform keys, a trust list, a deny list, a risk
 * policy, an enrolled canteen terminal, and payers with credentials. Everything is real and signed;
 * only the clock is settable.
 */
import {
  type Code,
  type CryptoProvider,
  type Credential,
  codeToText,
  type DenyEntry,
  denyColumns,
  fen,
  makeCode,
  type RiskPolicyBody,
  type Role,
  type Scene,
  type Scope,
  type Signer,
  signCredential,
  signDenyList,
  signRiskPolicy,
  signTerminalCertificate,
  signTrustList,
  type SuiteName,
  type TrustList,
} from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { type Clock, type JournalStore, MemoryJournal, Terminal, type TerminalOptions } from '../src/index.js';

export const T0_S = 1_790_000_000; // 2026-09-21, a fixed "now" so tests never depend on the wall clock

export class TestClock implements Clock {
  constructor(public ms = T0_S * 1000) {}
  nowMs(): number {
    return this.ms;
  }
  get s(): number {
    return Math.floor(this.ms / 1000);
  }
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

export interface World {
  readonly crypto: CryptoProvider;
  readonly suite: SuiteName;
  readonly root: Signer;
  readonly issuer: Signer;
  readonly ca: Signer;
  readonly lists: Signer;
  readonly trust: TrustList;
  denyVersion: number;
  policyVersion: number;
}

export async function makeWorld(suite: SuiteName = 'p256', crypto: CryptoProvider = nodeCrypto()): Promise<World> {
  const s = crypto.suite(suite);
  const [root, issuer, ca, lists] = await Promise.all([s.generate(), s.generate(), s.generate(), s.generate()]);
  const v = { notBefore: T0_S - 30 * 86_400, notAfter: T0_S + 400 * 86_400 };
  const trust = await signTrustList(
    {
      listVersion: 1,
      issuedAt: T0_S - 3600,
      expiresAt: T0_S + 60 * 86_400,
      rootKeyId: 1,
      rootSuite: suite,
      keys: [
        { keyId: 10, role: 'issuer', suite, ...v, publicKey: issuer.publicKey },
        { keyId: 20, role: 'terminal_ca', suite, ...v, publicKey: ca.publicKey },
        { keyId: 30, role: 'list_signer', suite, ...v, publicKey: lists.publicKey },
      ],
    },
    root,
  );
  return { crypto, suite, root, issuer, ca, lists, trust, denyVersion: 0, policyVersion: 0 };
}

export function rootKeys(w: World) {
  return [{ keyId: 1, suite: w.suite, publicKey: w.root.publicKey }];
}

/** A full deny list (next version) with the given entries. */
export async function denyList(w: World, entries: readonly DenyEntry[], issuedAt = T0_S - 60): Promise<Uint8Array> {
  w.denyVersion++;
  const list = await signDenyList(
    {
      signer: { suite: w.suite, keyId: 30 },
      kind: 'full',
      listVersion: w.denyVersion,
      baseVersion: 0,
      issuedAt,
      expiresAt: issuedAt + 2 * 86_400,
      ...denyColumns(entries),
    },
    w.lists,
  );
  return list.bytes;
}

/** A delta on top of the current deny-list version. */
export async function denyDelta(w: World, entries: readonly DenyEntry[], issuedAt = T0_S - 30): Promise<Uint8Array> {
  const base = w.denyVersion;
  w.denyVersion++;
  const list = await signDenyList(
    {
      signer: { suite: w.suite, keyId: 30 },
      kind: 'delta',
      listVersion: w.denyVersion,
      baseVersion: base,
      issuedAt,
      expiresAt: issuedAt + 2 * 86_400,
      ...denyColumns(entries),
    },
    w.lists,
  );
  return list.bytes;
}

export const DEFAULT_POLICY: Omit<RiskPolicyBody, 'signer' | 'policyVersion'> = {
  issuedAt: T0_S - 3600,
  codeWindowS: 60,
  clockSkewS: 120,
  maxOfflineS: 24 * 3600,
  maxListAgeS: 36 * 3600,
  perPaymentMax: fen(10_000),
  dayTotalMax: fen(30_000),
  dayCountMax: 10,
  onlineBudgetMs: 300,
  randomOnlinePer10k: 0,
  rules: [
    { scene: 'canteen', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMax: fen(5_000) },
    { scene: 'shop', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMax: fen(10_000) },
    { scene: 'bus', roles: ['student', 'teacher', 'staff'], campusOnly: true, perPaymentMax: fen(500) },
    { scene: 'gate', roles: ['student', 'staff'], campusOnly: true, perPaymentMax: fen(0) },
  ],
};

export async function policy(w: World, over: Partial<Omit<RiskPolicyBody, 'signer' | 'policyVersion'>> = {}): Promise<Uint8Array> {
  w.policyVersion++;
  const p = await signRiskPolicy(
    { ...DEFAULT_POLICY, ...over, signer: { suite: w.suite, keyId: 30 }, policyVersion: w.policyVersion },
    w.lists,
  );
  return p.bytes;
}

export interface TerminalSetup {
  readonly terminalId?: number;
  readonly scene?: Scene;
  readonly campus?: number;
  readonly certNotAfter?: number;
}

/** Makes a terminal key and certificate; returns the raw key and certificate bytes. */
export async function terminalIdentity(w: World, o: TerminalSetup = {}): Promise<{ key: Uint8Array; cert: Uint8Array }> {
  const signer = await w.crypto.suite(w.suite).generate();
  const cert = await signTerminalCertificate(
    {
      caSuite: w.suite,
      caKeyId: 20,
      terminalSuite: w.suite,
      terminalId: o.terminalId ?? 101,
      merchantId: 7,
      scene: o.scene ?? 'canteen',
      campus: o.campus ?? 1,
      location: 'North canteen, window 3 / 北区食堂 3 号窗口',
      notBefore: T0_S - 86_400,
      notAfter: o.certNotAfter ?? T0_S + 365 * 86_400,
      terminalPublicKey: signer.publicKey,
    },
    w.ca,
  );
  const key = await signer.exportPrivateKey();
  if (key === undefined) throw new Error('test key must be extractable');
  return { key, cert: cert.bytes };
}

/** Opens a terminal on `journal`, enrols it and installs fresh lists: ready to take payments. */
export async function readyTerminal(
  w: World,
  clock: TestClock,
  o: TerminalSetup & { journal?: JournalStore; deny?: readonly DenyEntry[]; online?: TerminalOptions['online'] } = {},
): Promise<Terminal> {
  const journal = o.journal ?? new MemoryJournal();
  const t = await Terminal.open({ journal, crypto: w.crypto, clock, ...(o.online !== undefined ? { online: o.online } : {}) });
  await t.pinRoots(rootKeys(w));
  await t.state.installTrustList(w.trust.bytes, clock.s);
  await t.state.installDenyList(await denyList(w, o.deny ?? [{ type: 'credential', id: 999_999, op: 'add' }]), clock.s);
  await t.state.installPolicy(await policy(w), clock.s);
  const id = await terminalIdentity(w, o);
  await t.state.installIdentity(id.cert, id.key);
  await t.state.markSynced(clock.s);
  return t;
}

export interface Payer {
  readonly device: Signer;
  readonly credential: Credential;
  counter: number;
  code(timeS: number): Promise<Code>;
  text(timeS: number): Promise<string>;
}

export interface PayerOptions {
  readonly serial?: number;
  readonly holder?: number;
  readonly role?: Role;
  readonly campus?: number;
  readonly scopes?: readonly Scope[];
  readonly perPayment?: number;
  readonly offlineTotal?: number;
  readonly offlineCount?: number;
  readonly notBefore?: number;
  readonly notAfter?: number;
  readonly issuerKeyId?: number;
}

let nextSerial = 5000;

export async function payer(w: World, o: PayerOptions = {}): Promise<Payer> {
  const device = await w.crypto.suite('p256').generate();
  const credential = await signCredential(
    {
      issuerSuite: w.suite,
      deviceSuite: 'p256',
      issuerKeyId: o.issuerKeyId ?? 10,
      serial: o.serial ?? nextSerial++,
      holder: o.holder ?? 70_000 + nextSerial,
      campus: o.campus ?? 1,
      role: o.role ?? 'student',
      scopes: o.scopes ?? ['canteen', 'shop', 'bus', 'gate'],
      devicePublicKey: device.publicKey,
      limits: { perPayment: fen(o.perPayment ?? 5_000), offlineTotal: fen(o.offlineTotal ?? 20_000), offlineCount: o.offlineCount ?? 20 },
      notBefore: o.notBefore ?? T0_S - 3600,
      notAfter: o.notAfter ?? T0_S + 72 * 3600,
    },
    w.issuer,
  );
  const p: Payer = {
    device,
    credential,
    counter: 0,
    async code(timeS) {
      p.counter++;
      return makeCode(credential, device, timeS, p.counter);
    },
    async text(timeS) {
      return codeToText(await p.code(timeS));
    },
  };
  return p;
}
