/**
 * Traffic for the console tests: real terminals activated with the demo's one-time codes, each
 * journalling signed offline payments made with a real enrolled wallet's codes and uploading them,
 * so the dashboard, clearing and statements show figures the platform computed. One code is used
 * at two terminals: clearing flags it as a replay, with both records as evidence.
 */
import { activationProofMessage, encodeUploadBatch, fen, GENESIS_HASH, type Signer, signRecord, type TerminalRecord } from '@duet/protocol';
import { b64, PlatformClient } from '@duet/protocol/client';
import { nodeCrypto } from '@duet/protocol/node';
import type { TestDemo } from './browser.js';
import { enrolledWallet } from '../src/index.js';

const crypto = nodeCrypto();

export interface FixtureTerminal {
  readonly id: number;
  readonly merchantId: number;
  readonly signer: Signer;
  readonly records: TerminalRecord[];
}

export async function staffToken(url: string, username: string, password: string): Promise<string> {
  const res = await fetch(`${url}/v1/staff/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = (await res.json()) as { token?: string };
  if (body.token === undefined) throw new Error(`staff login ${username}: ${res.status}`);
  return body.token;
}

export async function api(url: string, token: string, method: string, path: string, json?: unknown): Promise<unknown> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(json === undefined ? {} : { body: JSON.stringify(json) }),
  });
  const body: unknown = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** Activates the demo terminal `index` (one still waiting) with a P-256 key made here. */
export async function activateTerminal(t: TestDemo, index: number): Promise<FixtureTerminal> {
  const d = t.demo.terminals[index];
  if (d?.activationCode === undefined) throw new Error(`demo terminal ${index} has no activation code`);
  const signer = await crypto.suite('p256').generate();
  const proof = await signer.sign(activationProofMessage(d.activationCode, 'p256', signer.publicKey));
  const client = new PlatformClient(t.demo.url, crypto);
  const answer = (await client.call('POST', '/v1/terminal/activate', {
    json: { code: d.activationCode, suite: 'p256', publicKey: b64(signer.publicKey), proof: b64(proof) },
  })) as { terminalId: number };
  return { id: answer.terminalId, merchantId: d.merchantId, signer, records: [] };
}

/** Journals one offline payment of `amountFen` with the given code's bytes, chained and signed. */
export async function journal(term: FixtureTerminal, code: Uint8Array, amountFen: number): Promise<void> {
  const last = term.records[term.records.length - 1];
  const rec = await signRecord(
    {
      terminalId: term.id,
      sequence: term.records.length + 1,
      previousHash: last === undefined ? GENESIS_HASH : crypto.sha256(last.bytes),
      time: Math.floor(Date.now() / 1000),
      kind: 'payment',
      path: 'offline',
      medium: 'qr',
      outcome: 'accepted',
      amount: fen(amountFen),
      merchantId: term.merchantId,
      trustListVersion: 1,
      denyListVersion: 1,
      policyVersion: 1,
      evidence: code,
      terminalSuite: 'p256',
    },
    term.signer,
  );
  term.records.push(rec);
}

/** Uploads the terminal's records not yet uploaded, then syncs lists reporting `head` (its journal head). */
export async function uploadAndSync(t: TestDemo, term: FixtureTerminal, upTo: number, head: number): Promise<void> {
  const client = new PlatformClient(t.demo.url, crypto);
  const who = { id: term.id, signer: term.signer };
  if (upTo > 0)
    await client.call('POST', '/v1/terminal/upload', { bytes: encodeUploadBatch(term.id, term.records.slice(0, upTo)), terminal: who });
  await client.call('GET', `/v1/terminal/lists?deny=0&policy=0&head=${head}`, { terminal: who });
}

export interface Traffic {
  readonly terminals: readonly FixtureTerminal[];
  readonly payments: number;
  readonly paidFen: number;
  readonly holderId: number;
}

/**
 * Two terminals of the first canteen: the first takes three payments and uploads them all; the
 * second takes the first code again (a replay) and one more, uploads only the first and reports a
 * head of 2, so one record is waiting.
 */
export async function makeTraffic(t: TestDemo, holderId: number): Promise<Traffic> {
  const wallet = await enrolledWallet(t.demo.url, holderId, t.demo.password);
  const a = await activateTerminal(t, 0);
  const b = await activateTerminal(t, 1);
  const first = (await wallet.nextCode()).code.bytes;
  await journal(a, first, 1_200);
  await journal(a, (await wallet.nextCode()).code.bytes, 800);
  await journal(a, (await wallet.nextCode()).code.bytes, 500);
  await journal(b, first, 1_200);
  await journal(b, (await wallet.nextCode()).code.bytes, 300);
  await uploadAndSync(t, a, 3, 3);
  await uploadAndSync(t, b, 1, 2);
  return { terminals: [a, b], payments: 4, paidFen: 1_200 + 800 + 500 + 1_200, holderId };
}
