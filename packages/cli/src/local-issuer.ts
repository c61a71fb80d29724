/**
 * A local issuer: the platform's signing duties, kept in one folder, for trying the terminal and the
 * wallet before (or without) the platform service. It holds the root, issuer, terminal-CA and
 * list-signing keys IN THE CLEAR (file mode 0600): a development and test tool, never a production
 * keystore (the platform service keeps its keys encrypted at rest).
 */
import { appendFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  type CryptoProvider,
  decodeUploadBatch,
  denyColumns,
  GENESIS_HASH,
  fen,
  fromHex,
  type RootKey,
  type Scene,
  type Signer,
  type SuiteName,
  signCredential,
  signDenyList,
  signRiskPolicy,
  signTerminalCertificate,
  signTrustList,
  toHex,
  verifyChain,
  verifyRecordSignature,
} from '@duet/protocol';
import { CliError } from './command.js';
import { readJson, writeFileDurable } from './files.js';

const DAY_S = 86_400;
const ROLES = { root: 1, issuer: 10, terminal_ca: 20, list_signer: 30 } as const;

interface IssuerFile {
  readonly format: 'duet-local-issuer/1';
  readonly suite: SuiteName;
  readonly keys: { readonly [K in keyof typeof ROLES]: string };
  readonly nextSerial: number;
  readonly nextTerminalId: number;
  readonly trustList: string;
  readonly denyList: string;
  readonly policy: string;
  /** Terminal id → its certified public key (hex), so uploads can be verified. */
  readonly terminals: { readonly [id: string]: string };
  /** Terminal id → highest contiguous sequence received and that record's hash (hex). */
  readonly intake: { readonly [id: string]: { readonly acked: number; readonly hash: string } };
}

export interface Lists {
  readonly trustList: Uint8Array;
  readonly denyList: Uint8Array;
  readonly policy: Uint8Array;
}

export class LocalIssuer {
  private constructor(
    private readonly path: string,
    private file: IssuerFile,
    private readonly crypto: CryptoProvider,
    private readonly signers: { readonly [K in keyof typeof ROLES]: Signer },
  ) {}

  static fileIn(dir: string): string {
    return join(dir, 'issuer.json');
  }

  /** Makes new keys and signed lists in `dir`. Refuses to overwrite an existing issuer. */
  static async init(dir: string, crypto: CryptoProvider, suite: SuiteName, nowS: number): Promise<LocalIssuer> {
    const s = crypto.suite(suite);
    const signers = {
      root: await s.generate(),
      issuer: await s.generate(),
      terminal_ca: await s.generate(),
      list_signer: await s.generate(),
    };
    const keys = { root: '', issuer: '', terminal_ca: '', list_signer: '' };
    for (const k of Object.keys(signers) as (keyof typeof ROLES)[])
      keys[k] = toHex((await signers[k].exportPrivateKey()) ?? new Uint8Array());
    const issuer = new LocalIssuer(
      LocalIssuer.fileIn(dir),
      {
        format: 'duet-local-issuer/1',
        suite,
        keys,
        nextSerial: 1,
        nextTerminalId: 1,
        trustList: '',
        denyList: '',
        policy: '',
        terminals: {},
        intake: {},
      },
      crypto,
      signers,
    );
    await issuer.publish(nowS);
    return issuer;
  }

  static async open(dir: string, crypto: CryptoProvider): Promise<LocalIssuer> {
    const path = LocalIssuer.fileIn(dir);
    const raw = readJson(path, {
      en: 'local issuer (run `duet issuer init`)',
      zh: '本地签发方（请先运行 `duet issuer init`）',
    }) as IssuerFile;
    if (raw.format !== 'duet-local-issuer/1') {
      throw new CliError('corrupt_file', { en: `${path} is not a Duet local issuer file`, zh: `${path} 不是 Duet 本地签发方文件` });
    }
    const s = crypto.suite(raw.suite);
    const signers = {
      root: await s.importPrivateKey(fromHex(raw.keys.root)),
      issuer: await s.importPrivateKey(fromHex(raw.keys.issuer)),
      terminal_ca: await s.importPrivateKey(fromHex(raw.keys.terminal_ca)),
      list_signer: await s.importPrivateKey(fromHex(raw.keys.list_signer)),
    };
    return new LocalIssuer(path, raw, crypto, signers);
  }

  get rootKeys(): RootKey[] {
    return [{ keyId: ROLES.root, suite: this.file.suite, publicKey: this.signers.root.publicKey }];
  }

  lists(): Lists {
    return { trustList: fromHex(this.file.trustList), denyList: fromHex(this.file.denyList), policy: fromHex(this.file.policy) };
  }

  /** Signs fresh lists (trust list, an empty full deny list, the default policy), each one version up. */
  async publish(nowS: number): Promise<Lists> {
    const suite = this.file.suite;
    const version = Math.max(1, Math.floor(nowS / 60));
    const validity = { notBefore: nowS - DAY_S, notAfter: nowS + 400 * DAY_S };
    const trust = await signTrustList(
      {
        listVersion: version,
        issuedAt: nowS - 60,
        expiresAt: nowS + 30 * DAY_S,
        rootKeyId: ROLES.root,
        rootSuite: suite,
        keys: (['issuer', 'terminal_ca', 'list_signer'] as const).map((role) => ({
          keyId: ROLES[role],
          role,
          suite,
          ...validity,
          publicKey: this.signers[role].publicKey,
        })),
      },
      this.signers.root,
    );
    const deny = await signDenyList(
      {
        signer: { suite, keyId: ROLES.list_signer },
        kind: 'full',
        listVersion: version,
        baseVersion: 0,
        issuedAt: nowS - 60,
        expiresAt: nowS + 2 * DAY_S,
        ...denyColumns([]),
      },
      this.signers.list_signer,
    );
    const policy = await signRiskPolicy(
      {
        signer: { suite, keyId: ROLES.list_signer },
        policyVersion: version,
        issuedAt: nowS - 60,
        codeWindowS: 60,
        clockSkewS: 300,
        maxOfflineS: 2 * DAY_S,
        maxListAgeS: 2 * DAY_S,
        perPaymentMax: fen(10_000),
        dayTotalMax: fen(30_000),
        dayCountMax: 10,
        onlineBudgetMs: 300,
        randomOnlinePer10k: 0,
        rules: [
          { scene: 'canteen', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMax: fen(5_000) },
          { scene: 'shop', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMax: fen(10_000) },
          { scene: 'bus', roles: ['student', 'teacher', 'staff'], campusOnly: true, perPaymentMax: fen(500) },
          { scene: 'gate', roles: ['student', 'teacher', 'staff'], campusOnly: true, perPaymentMax: fen(0) },
        ],
      },
      this.signers.list_signer,
    );
    this.file = { ...this.file, trustList: toHex(trust.bytes), denyList: toHex(deny.bytes), policy: toHex(policy.bytes) };
    this.save();
    return this.lists();
  }

  /** Certifies a terminal's public key for a merchant, scene and campus. */
  async certifyTerminal(o: {
    publicKey: Uint8Array;
    scene: Scene;
    merchantId: number;
    campus: number;
    location: string;
    nowS: number;
  }): Promise<{ terminalId: number; certificate: Uint8Array }> {
    const terminalId = this.file.nextTerminalId;
    const cert = await signTerminalCertificate(
      {
        caSuite: this.file.suite,
        caKeyId: ROLES.terminal_ca,
        terminalSuite: this.file.suite,
        terminalId,
        merchantId: o.merchantId,
        scene: o.scene,
        campus: o.campus,
        location: o.location,
        notBefore: o.nowS - 60,
        notAfter: o.nowS + 365 * DAY_S,
        terminalPublicKey: o.publicKey,
      },
      this.signers.terminal_ca,
    );
    this.file = { ...this.file, nextTerminalId: terminalId + 1, terminals: { ...this.file.terminals, [terminalId]: toHex(o.publicKey) } };
    this.save();
    return { terminalId, certificate: cert.bytes };
  }

  /** Issues a 72-hour credential to a device key (the caller has checked its proof of possession). */
  async issueCredential(o: { devicePublicKey: Uint8Array; deviceSuite: SuiteName; holder: number; nowS: number }): Promise<Uint8Array> {
    const serial = this.file.nextSerial;
    const cred = await signCredential(
      {
        issuerSuite: this.file.suite,
        deviceSuite: o.deviceSuite,
        issuerKeyId: ROLES.issuer,
        serial,
        holder: o.holder,
        campus: 1,
        role: 'student',
        scopes: ['canteen', 'shop', 'bus', 'gate'],
        devicePublicKey: o.devicePublicKey,
        limits: { perPayment: fen(5_000), offlineTotal: fen(20_000), offlineCount: 20 },
        notBefore: o.nowS - 60,
        notAfter: o.nowS + 72 * 3600,
      },
      this.signers.issuer,
    );
    this.file = { ...this.file, nextSerial: serial + 1 };
    this.save();
    return cred.bytes;
  }

  /**
   * Takes an upload batch as the platform's intake would: every record's signature and the chain
   * from the last record held are checked; records already held are skipped (idempotent); the
   * records are appended to records-<terminal>.jsonl. Returns the highest contiguous sequence held.
   */
  async intake(batchBytes: Uint8Array): Promise<{ ackedThrough: number; stored: number }> {
    const batch = decodeUploadBatch(batchBytes);
    const id = String(batch.terminalId);
    const key = this.file.terminals[id];
    if (key === undefined)
      throw new CliError('unknown_terminal', { en: `Terminal ${id} was not enrolled here`, zh: `终端 ${id} 未在此注册` });
    const held = this.file.intake[id] ?? { acked: 0, hash: toHex(GENESIS_HASH) };
    const fresh = batch.records.filter((r) => r.sequence > held.acked);
    if (fresh.length === 0) return { ackedThrough: held.acked, stored: 0 };
    for (const r of fresh) await verifyRecordSignature(r, fromHex(key), this.crypto);
    const last = verifyChain(fresh, held.acked, fromHex(held.hash), this.crypto);
    const lines = fresh.map((r) =>
      JSON.stringify({ sequence: r.sequence, time: r.time, amount: r.amount, path: r.path, record: toHex(r.bytes) }),
    );
    appendFileSync(join(dirname(this.path), `records-${id}.jsonl`), `${lines.join('\n')}\n`, { mode: 0o600 });
    const acked = fresh[fresh.length - 1]?.sequence ?? held.acked;
    this.file = { ...this.file, intake: { ...this.file.intake, [id]: { acked, hash: toHex(last) } } };
    this.save();
    return { ackedThrough: acked, stored: fresh.length };
  }

  get cryptoProvider(): CryptoProvider {
    return this.crypto;
  }

  private save(): void {
    writeFileDurable(this.path, `${JSON.stringify(this.file, null, 2)}\n`);
  }
}
