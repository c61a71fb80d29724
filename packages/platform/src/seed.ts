/**
 * In-process setup for operator tools that run beside the platform (the demo campus, benchmarks):
 * holders with money, devices and credentials, merchants and activated terminals, made through the
 * same functions the API uses but without HTTP sessions or proofs of possession (the tool made the
 * keys itself). Never exposed over HTTP.
 */
import type { Credential, CryptoProvider, Role, Scene, Signer } from '@duet/protocol';
import { activationProofMessage } from '@duet/protocol';
import type { Db } from './db/db.js';
import { acceptAgreement, createHolder, currentAgreement } from './holders.js';
import { issueCredential } from './issuance.js';
import { grantSubsidy, setCreditLine, topUp } from './purses.js';
import { activateTerminal, createMerchant, createTerminal } from './registry.js';
import { prefetchKeys, type SigningKeys } from './signing-keys.js';

export interface SeedHolder {
  readonly id: number;
  readonly name: string;
  readonly role: Role;
  readonly campus: number;
  readonly cashFen?: number;
  readonly subsidyFen?: number;
  readonly creditLineFen?: number;
}

/** A holder who accepted the agreement, with the money given. */
export async function seedHolder(db: Db, h: SeedHolder, nowS: number): Promise<void> {
  await db.tx(async (q) => {
    await createHolder(q, { id: h.id, name: h.name, role: h.role, campus: h.campus }, nowS);
    await acceptAgreement(q, h.id, (await currentAgreement(q)).version, 'seed', nowS);
  });
  if ((h.cashFen ?? 0) > 0)
    await topUp(db, { holderId: h.id, amount: h.cashFen ?? 0, channel: 'cashier', idempotencyKey: `seed-topup-${h.id}`, by: 'seed' }, nowS);
  if ((h.subsidyFen ?? 0) > 0)
    await grantSubsidy(db, { holderId: h.id, amount: h.subsidyFen ?? 0, idempotencyKey: `seed-subsidy-${h.id}`, by: 'seed' }, nowS);
  if ((h.creditLineFen ?? 0) > 0) await setCreditLine(db, { holderId: h.id, limit: h.creditLineFen ?? 0, by: 'seed' }, nowS);
}

/** Registers a device key the tool made and issues its credential. */
export async function seedCredential(db: Db, keys: SigningKeys, holderId: number, device: Signer, nowS: number): Promise<Credential> {
  const k = await prefetchKeys(keys);
  return db.tx(async (q) => {
    const row = await q.one<{ id: number }>(
      'INSERT INTO devices (holder_id, suite, public_key, label, status, registered_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id',
      [holderId, device.suite, device.publicKey, 'seed', 'active', nowS],
    );
    return issueCredential(q, k, { holderId, deviceId: Number(row?.id) }, nowS);
  });
}

/** A merchant and an activated terminal whose key the tool made; returns the terminal id and certificate. */
export async function seedTerminal(
  db: Db,
  crypto: CryptoProvider,
  keys: SigningKeys,
  o: { merchantId?: number; merchantName: string; scene: Scene; campus: number; location: string; key: Signer },
  nowS: number,
): Promise<{ merchantId: number; terminalId: number; certificate: Uint8Array }> {
  const k = await prefetchKeys(keys);
  return db.tx(async (q) => {
    const merchantId = o.merchantId ?? (await createMerchant(q, o.merchantName, o.scene, nowS)).id;
    const { activationCode } = await createTerminal(
      q,
      crypto,
      { merchantId, scene: o.scene, campus: o.campus, location: o.location },
      nowS,
    );
    const proof = await o.key.sign(activationProofMessage(activationCode, o.key.suite, o.key.publicKey));
    const { terminal, certificate } = await activateTerminal(
      q,
      crypto,
      k,
      { code: activationCode, suite: o.key.suite, publicKey: o.key.publicKey, proof },
      nowS,
    );
    return { merchantId, terminalId: terminal.id, certificate };
  });
}
