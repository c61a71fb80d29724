/**
 * Terminal benchmarks (issue 3): decision latency from code text to decision with the record
 * durable (SQLite WAL, synchronous=FULL, a fresh payer each time so both signatures are verified),
 * and in the same run the floor: two signature verifications plus one durable write (write + fsync
 * of a record-sized block in the same folder). Also deny-list memory at 1,000,000 entries.
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { codeToText, denyColumns, fen, makeCode, signDenyList, signRiskPolicy, signTerminalCertificate } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { DenySet, Terminal } from '@duet/terminal';
import { SqliteJournal } from '@duet/terminal/sqlite';
import { issueCredential, LIST_SIGNER_KEY_ID, makeWorld, TERMINAL_CA_KEY_ID } from '../world.js';
import { latency, round3 } from './measure.js';

export interface TerminalFigures {
  terminal_decision_ms: { p50: number; p99: number; max: number };
  terminal_floor_ms: number;
  terminal_floor_ms_p99: number;
  /** p99 decision ÷ p99 floor: the target is ≤ 3. */
  terminal_decision_vs_floor: number;
  terminal_decisions_measured: number;
  denylist_mb_1m: number;
}

export async function benchTerminal(count: number, progress: (m: string) => void): Promise<TerminalFigures> {
  const crypto = nodeCrypto();
  const nowS = Math.floor(Date.now() / 1000);
  const world = await makeWorld(crypto, 'p256', nowS);
  const dir = mkdtempSync(join(tmpdir(), 'duet-bench-terminal-'));
  try {
    progress(`terminal: preparing ${count} payers`);
    const journal = new SqliteJournal(join(dir, 'journal.db'));
    const clock = { nowMs: () => nowS * 1000 };
    const t = await Terminal.open({ journal, crypto, clock });
    await t.pinRoots([world.rootKey]);
    await t.state.installTrustList(world.trustList.bytes, nowS);
    const deny = await signDenyList(
      {
        signer: { suite: 'p256', keyId: LIST_SIGNER_KEY_ID },
        kind: 'full',
        listVersion: 1,
        baseVersion: 0,
        issuedAt: nowS - 60,
        expiresAt: nowS + 86_400,
        ...denyColumns([]),
      },
      world.listSigner,
    );
    await t.state.installDenyList(deny.bytes, nowS);
    const policy = await signRiskPolicy(
      {
        signer: { suite: 'p256', keyId: LIST_SIGNER_KEY_ID },
        policyVersion: 1,
        issuedAt: nowS - 60,
        codeWindowS: 60,
        clockSkewS: 300,
        maxOfflineS: 86_400,
        maxListAgeS: 86_400,
        perPaymentMax: fen(10_000),
        dayTotalMax: fen(30_000),
        dayCountMax: 10,
        onlineBudgetMs: 300,
        randomOnlinePer10k: 0,
        rules: [{ scene: 'canteen', roles: ['student', 'teacher', 'staff'], campusOnly: false, perPaymentMax: fen(5_000) }],
      },
      world.listSigner,
    );
    await t.state.installPolicy(policy.bytes, nowS);
    const key = await crypto.suite('p256').generate();
    const cert = await signTerminalCertificate(
      {
        caSuite: 'p256',
        caKeyId: TERMINAL_CA_KEY_ID,
        terminalSuite: 'p256',
        terminalId: 1,
        merchantId: 1,
        scene: 'canteen',
        campus: 1,
        location: 'bench',
        notBefore: nowS - 60,
        notAfter: nowS + 86_400,
        terminalPublicKey: key.publicKey,
      },
      world.terminalCa,
    );
    await t.state.installIdentity(cert.bytes, (await key.exportPrivateKey()) ?? new Uint8Array());
    await t.state.markSynced(nowS);
    const texts: string[] = [];
    for (let i = 0; i < count; i++) {
      const { device, credential } = await issueCredential(world, { serial: 10_000 + i, holder: 50_000 + i, nowS });
      texts.push(codeToText(await makeCode(credential, device, nowS, 1)));
    }

    progress(`terminal: ${count} decisions, each with its record durable`);
    let declined = 0;
    const decision = await latency(async (i) => {
      const d = await t.pay(1_250, texts[i] ?? '');
      if (!d.accepted) declined++;
    }, count);
    if (declined > 0) throw new Error(`bench: ${declined} payments were declined; the figures would be wrong`);
    await journal.close();

    progress('terminal: floor (2 verifies + write + fsync)');
    const floor = await floorLatency(dir, count);

    progress('terminal: deny list of 1,000,000 entries');
    const deny1m = await denyListMemory(world);
    return {
      terminal_decision_ms: decision,
      terminal_floor_ms: floor.p50,
      terminal_floor_ms_p99: floor.p99,
      terminal_decision_vs_floor: round3(decision.p99 / floor.p99),
      terminal_decisions_measured: count,
      denylist_mb_1m: deny1m.structural,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function floorLatency(dir: string, count: number) {
  const crypto = nodeCrypto();
  const p256 = crypto.suite('p256');
  const signers = await Promise.all([p256.generate(), p256.generate()]);
  const message = crypto.randomBytes(200);
  const sigs = await Promise.all(signers.map((s) => s.sign(message)));
  const block = Buffer.alloc(520, 7);
  const fd = openSync(join(dir, 'floor.bin'), 'w');
  try {
    return await latency(async () => {
      await p256.verify(signers[0]?.publicKey ?? new Uint8Array(), message, sigs[0] ?? new Uint8Array());
      await p256.verify(signers[1]?.publicKey ?? new Uint8Array(), message, sigs[1] ?? new Uint8Array());
      writeSync(fd, block);
      fsyncSync(fd);
    }, count);
  } finally {
    closeSync(fd);
  }
}

/**
 * Memory of a deny set of 1,000,000 entries: the exact byte length of its typed arrays (its whole
 * variable-size state). A process-memory delta was tried and dropped: collecting the garbage of
 * signing a 7 MB list lands between the two readings and swamps the 8 MB being measured.
 */
async function denyListMemory(world: Awaited<ReturnType<typeof makeWorld>>): Promise<{ structural: number }> {
  const n = 1_000_000;
  const tags = new Uint8Array(n).fill(2);
  const ids = new Float64Array(n);
  for (let i = 0; i < n; i++) ids[i] = 1 + i * 7;
  const list = await signDenyList(
    {
      signer: { suite: 'p256', keyId: LIST_SIGNER_KEY_ID },
      kind: 'full',
      listVersion: 1,
      baseVersion: 0,
      issuedAt: 1,
      expiresAt: 2,
      tags,
      ids,
    },
    world.listSigner,
  );
  const set = DenySet.fromFull(list);
  if (!set.has('holder', 1 + 7 * 999_999) || set.size !== n) throw new Error('bench: deny set lost an entry');
  return { structural: round3(set.byteLength / 2 ** 20) };
}
