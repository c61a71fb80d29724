/**
 * A complete local trust world made in memory: root, issuer, terminal-CA and list-signing keys, a
 * signed trust list, and credentials for fresh device keys. The walk-through and the benchmarks use
 * it; the platform service (issue 4) does the same with keys kept encrypted at rest.
 */
import {
  type CryptoProvider,
  type Credential,
  fen,
  type RootKey,
  type Signer,
  type SuiteName,
  signCredential,
  signTrustList,
  type TrustList,
} from '@duet/protocol';

export interface World {
  readonly crypto: CryptoProvider;
  readonly suite: SuiteName;
  readonly root: Signer;
  readonly rootKey: RootKey;
  readonly issuer: Signer;
  readonly terminalCa: Signer;
  readonly listSigner: Signer;
  readonly trustList: TrustList;
}

const DAY_S = 86_400;
export const ISSUER_KEY_ID = 10;
export const TERMINAL_CA_KEY_ID = 20;
export const LIST_SIGNER_KEY_ID = 30;

export async function makeWorld(crypto: CryptoProvider, suite: SuiteName, nowS: number): Promise<World> {
  const s = crypto.suite(suite);
  const [root, issuer, terminalCa, listSigner] = await Promise.all([s.generate(), s.generate(), s.generate(), s.generate()]);
  const validity = { notBefore: nowS - DAY_S, notAfter: nowS + 365 * DAY_S };
  const trustList = await signTrustList(
    {
      listVersion: 1,
      issuedAt: nowS - 60,
      expiresAt: nowS + 30 * DAY_S,
      rootKeyId: 1,
      rootSuite: suite,
      keys: [
        { keyId: ISSUER_KEY_ID, role: 'issuer', suite, ...validity, publicKey: issuer.publicKey },
        { keyId: TERMINAL_CA_KEY_ID, role: 'terminal_ca', suite, ...validity, publicKey: terminalCa.publicKey },
        { keyId: LIST_SIGNER_KEY_ID, role: 'list_signer', suite, ...validity, publicKey: listSigner.publicKey },
      ],
    },
    root,
  );
  return { crypto, suite, root, rootKey: { keyId: 1, suite, publicKey: root.publicKey }, issuer, terminalCa, listSigner, trustList };
}

export interface IssueOptions {
  readonly serial: number;
  readonly holder: number;
  readonly nowS: number;
  readonly deviceSuite?: SuiteName;
  /** Certify this existing device key instead of making one (the wallet keeps its own key). */
  readonly devicePublicKey?: Uint8Array;
}

/** Issues a 72-hour credential to a new device key, with the demo campus's limits. */
export async function issueCredential(world: World, o: IssueOptions): Promise<{ device: Signer; credential: Credential }> {
  const deviceSuite = o.deviceSuite ?? 'p256';
  const device = await world.crypto.suite(deviceSuite).generate();
  const devicePublicKey = o.devicePublicKey ?? device.publicKey;
  const credential = await signCredential(
    {
      issuerSuite: world.suite,
      deviceSuite,
      issuerKeyId: ISSUER_KEY_ID,
      serial: o.serial,
      holder: o.holder,
      campus: 1,
      role: 'student',
      scopes: ['canteen', 'shop', 'bus', 'gate'],
      devicePublicKey,
      limits: { perPayment: fen(5_000), offlineTotal: fen(20_000), offlineCount: 20 },
      notBefore: o.nowS - 60,
      notAfter: o.nowS + 72 * 3600,
    },
    world.issuer,
  );
  return { device, credential };
}
