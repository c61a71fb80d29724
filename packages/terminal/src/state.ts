/**
 * What a terminal trusts: pinned root keys, the trust list, deny lists, the risk policy and its own
 * certificate and key. Every object is verified before use, persisted before it takes effect, and
 * swapped in as one immutable snapshot, so a decision never sees half an update; versions never go
 * backwards, across restarts too.
 */
import {
  type CryptoProvider,
  concatBytes,
  decodeDenyList,
  decodeRiskPolicy,
  decodeTerminalCertificate,
  decodeTrustList,
  ProtocolError,
  type RiskPolicy,
  type RootKey,
  type Signer,
  type SuiteName,
  SUITES,
  type TerminalCertificate,
  type TrustList,
  verifyDenyList,
  verifyRiskPolicy,
  verifyTerminalCertificate,
  verifyTrustList,
} from '@duet/protocol';
import { DenySet } from './deny-set.js';
import type { JournalStore } from './ports.js';

export interface Identity {
  readonly certificate: TerminalCertificate;
  readonly signer: Signer;
}

export interface Snapshot {
  readonly roots: readonly RootKey[];
  readonly trust: TrustList | undefined;
  readonly deny: DenySet;
  readonly policy: RiskPolicy | undefined;
  readonly identity: Identity | undefined;
  /** Last time (seconds) the platform answered this terminal: lists fetched or an upload acknowledged. */
  readonly lastSyncS: number;
}

const META = {
  roots: 'roots',
  trust: 'trust_list',
  denyFull: 'deny_full',
  denyDeltas: 'deny_deltas',
  policy: 'risk_policy',
  certificate: 'certificate',
  key: 'terminal_key',
  lastSync: 'last_sync_s',
} as const;

const enc = new TextEncoder();
const dec = new TextDecoder();

export class TerminalState {
  private current: Snapshot;

  private constructor(
    private readonly journal: JournalStore,
    private readonly crypto: CryptoProvider,
    initial: Snapshot,
  ) {
    this.current = initial;
  }

  get snapshot(): Snapshot {
    return this.current;
  }

  /** Loads and re-verifies everything the journal's meta holds. A terminal never enrolled loads empty. */
  static async load(journal: JournalStore, crypto: CryptoProvider): Promise<TerminalState> {
    const rootsRaw = await journal.getMeta(META.roots);
    const roots = rootsRaw === undefined ? [] : parseRoots(rootsRaw);
    const state = new TerminalState(journal, crypto, {
      roots,
      trust: undefined,
      deny: DenySet.empty(),
      policy: undefined,
      identity: undefined,
      lastSyncS: 0,
    });
    const trust = await journal.getMeta(META.trust);
    // Stored objects are checked for signature and form; staleness is the decision's business.
    if (trust !== undefined) await state.installTrustList(trust, undefined, { persist: false, ignoreExpiry: true });
    const full = await journal.getMeta(META.denyFull);
    if (full !== undefined) {
      await state.installDenyList(full, undefined, { persist: false, ignoreExpiry: true });
      for (const d of splitFrames(await journal.getMeta(META.denyDeltas))) {
        await state.installDenyList(d, undefined, { persist: false, ignoreExpiry: true });
      }
    }
    const policy = await journal.getMeta(META.policy);
    if (policy !== undefined) await state.installPolicy(policy, undefined, { persist: false, ignoreExpiry: true });
    const cert = await journal.getMeta(META.certificate);
    const key = await journal.getMeta(META.key);
    if (cert !== undefined && key !== undefined) await state.installIdentity(cert, key, { persist: false });
    const lastSync = await journal.getMeta(META.lastSync);
    if (lastSync !== undefined) state.current = { ...state.current, lastSyncS: Number(dec.decode(lastSync)) };
    return state;
  }

  /** Pins the root keys (at enrolment). Replaces what was pinned. */
  async pinRoots(roots: readonly RootKey[]): Promise<void> {
    if (roots.length === 0) throw new ProtocolError('bad_value', 'terminal: at least one root key must be pinned');
    await this.journal.setMeta(META.roots, enc.encode(JSON.stringify(roots.map((r) => ({ ...r, publicKey: Array.from(r.publicKey) })))));
    this.current = { ...this.current, roots: [...roots] };
  }

  async installTrustList(bytes: Uint8Array, nowS: number | undefined, o: InstallOptions = {}): Promise<TrustList> {
    const list = decodeTrustList(bytes);
    const held = this.current.trust?.listVersion;
    const at = o.ignoreExpiry === true || nowS === undefined ? list.issuedAt : nowS;
    await verifyTrustList(list, this.current.roots, this.crypto, at, held);
    if (held === list.listVersion) {
      if (!equal(list.bytes, this.current.trust?.bytes ?? new Uint8Array())) {
        throw new ProtocolError('version_regressed', `trust list v${list.listVersion}: a different list under the version already held`);
      }
      return list;
    }
    if (o.persist !== false) await this.journal.setMeta(META.trust, list.bytes);
    this.current = { ...this.current, trust: list };
    return list;
  }

  /** Installs a full deny list (replacing the set) or a delta (on top of the held version). */
  async installDenyList(bytes: Uint8Array, nowS: number | undefined, o: InstallOptions = {}): Promise<DenySet> {
    const trust = this.requireTrust();
    const list = decodeDenyList(bytes);
    await verifyDenyList(list, trust, this.crypto, o.ignoreExpiry === true || nowS === undefined ? list.issuedAt : nowS);
    const held = this.current.deny;
    if (list.listVersion < held.version) {
      throw new ProtocolError('version_regressed', `deny list v${list.listVersion} < held v${held.version}`);
    }
    if (list.listVersion === held.version) return held;
    const next = list.kind === 'full' ? DenySet.fromFull(list) : held.applyDelta(list);
    if (o.persist !== false) {
      if (list.kind === 'full') {
        await this.journal.setMetaMany([
          [META.denyFull, list.bytes],
          [META.denyDeltas, new Uint8Array(0)],
        ]);
      } else {
        const deltas = (await this.journal.getMeta(META.denyDeltas)) ?? new Uint8Array(0);
        await this.journal.setMeta(META.denyDeltas, concatBytes(deltas, frame(list.bytes)));
      }
    }
    this.current = { ...this.current, deny: next };
    return next;
  }

  async installPolicy(bytes: Uint8Array, nowS: number | undefined, o: InstallOptions = {}): Promise<RiskPolicy> {
    const trust = this.requireTrust();
    const policy = decodeRiskPolicy(bytes);
    await verifyRiskPolicy(policy, trust, this.crypto, o.ignoreExpiry === true || nowS === undefined ? policy.issuedAt : nowS);
    const held = this.current.policy?.policyVersion ?? 0;
    if (policy.policyVersion < held) throw new ProtocolError('version_regressed', `policy v${policy.policyVersion} < held v${held}`);
    if (o.persist !== false) await this.journal.setMeta(META.policy, policy.bytes);
    this.current = { ...this.current, policy };
    return policy;
  }

  /** Installs this terminal's certificate and private key; the key must match the certificate. */
  async installIdentity(certBytes: Uint8Array, rawKey: Uint8Array, o: InstallOptions = {}): Promise<Identity> {
    const trust = this.requireTrust();
    const certificate = decodeTerminalCertificate(certBytes);
    await verifyTerminalCertificate(certificate, trust, this.crypto);
    const signer = await this.crypto.suite(certificate.terminalSuite).importPrivateKey(rawKey);
    if (!equal(signer.publicKey, certificate.terminalPublicKey)) {
      throw new ProtocolError('bad_key', 'terminal key does not match the certificate');
    }
    if (o.persist !== false) {
      // One write: a crash must never leave a new key beside the old certificate.
      await this.journal.setMetaMany([
        [META.key, rawKey],
        [META.certificate, certificate.bytes],
      ]);
    }
    this.current = { ...this.current, identity: { certificate, signer } };
    return this.current.identity as Identity;
  }

  /** Records that the platform answered at `nowS` (lists fetched or an upload acknowledged). */
  async markSynced(nowS: number): Promise<void> {
    if (nowS <= this.current.lastSyncS) return;
    await this.journal.setMeta(META.lastSync, enc.encode(String(nowS)));
    this.current = { ...this.current, lastSyncS: nowS };
  }

  private requireTrust(): TrustList {
    const t = this.current.trust;
    if (t === undefined) throw new ProtocolError('unknown_key', 'terminal: no trust list installed yet');
    return t;
  }
}

export interface InstallOptions {
  readonly persist?: boolean;
  /** Loading from disk: check signatures and form, leave staleness to the decision. */
  readonly ignoreExpiry?: boolean;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function frame(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

function splitFrames(bytes: Uint8Array | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (bytes === undefined) return out;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  while (o + 4 <= bytes.length) {
    const n = view.getUint32(o);
    if (o + 4 + n > bytes.length) throw new ProtocolError('bad_length', 'terminal: stored deny deltas are truncated');
    out.push(bytes.subarray(o + 4, o + 4 + n));
    o += 4 + n;
  }
  if (o !== bytes.length) throw new ProtocolError('bad_length', 'terminal: stored deny deltas are truncated');
  return out;
}

function parseRoots(raw: Uint8Array): RootKey[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(dec.decode(raw));
  } catch (e) {
    throw new ProtocolError('bad_encoding', 'terminal: stored root keys are not JSON', { cause: e });
  }
  if (!Array.isArray(parsed)) throw new ProtocolError('bad_value', 'terminal: stored root keys are not a list');
  return parsed.map((r: unknown) => {
    const o = r as { keyId?: unknown; suite?: unknown; publicKey?: unknown };
    const suite = SUITES.find((s): s is SuiteName => s === o.suite);
    if (typeof o.keyId !== 'number' || suite === undefined || !Array.isArray(o.publicKey)) {
      throw new ProtocolError('bad_value', 'terminal: a stored root key is malformed');
    }
    return { keyId: o.keyId, suite, publicKey: Uint8Array.from(o.publicKey as number[]) };
  });
}
