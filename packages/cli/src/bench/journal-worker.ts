/**
 * Signs terminals' journals for the clearing benchmarks in a worker thread, so setup uses every
 * core (a million records is two million P-256 signatures) and stays outside the measured time.
 *
 * Record `g` of the whole run (terminal index × records per terminal + sequence − 1) pays with a
 * code of holder `g mod holders` at counter `⌊g / holders⌋ + 1`: every record carries its own
 * (serial, counter), as real payments do; none is a replay. The worker answers with each
 * terminal's journal framed as upload batches of `batchRecords`, ready to send.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decodeCredential, encodeUploadBatch, fen, GENESIS_HASH, makeCode, signRecord, type TerminalRecord } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';

export interface JournalJob {
  readonly terminals: readonly {
    readonly index: number;
    readonly terminalId: number;
    readonly merchantId: number;
    readonly key: Uint8Array;
  }[];
  readonly holders: readonly { readonly key: Uint8Array; readonly credential: Uint8Array }[];
  readonly recordsPerTerminal: number;
  readonly batchRecords: number;
  readonly timeS: number;
  readonly amountFen: number;
}

/** One terminal's journal as upload batches: batch k holds sequences k × batchRecords + 1 onwards. */
export interface SignedJournal {
  readonly terminalId: number;
  readonly batches: Uint8Array[];
}

async function signJournals(job: JournalJob): Promise<SignedJournal[]> {
  const crypto = nodeCrypto();
  const p256 = crypto.suite('p256');
  const holders = await Promise.all(
    job.holders.map(async (h) => ({ device: await p256.importPrivateKey(h.key), credential: decodeCredential(h.credential) })),
  );
  const out: SignedJournal[] = [];
  for (const t of job.terminals) {
    const signer = await p256.importPrivateKey(t.key);
    const batches: Uint8Array[] = [];
    let batch: TerminalRecord[] = [];
    let previousHash: Uint8Array = GENESIS_HASH;
    for (let sequence = 1; sequence <= job.recordsPerTerminal; sequence++) {
      const g = t.index * job.recordsPerTerminal + sequence - 1;
      const holder = holders[g % holders.length];
      if (holder === undefined) throw new Error('journal worker: no holders');
      const code = await makeCode(holder.credential, holder.device, job.timeS, Math.floor(g / holders.length) + 1);
      const rec = await signRecord(
        {
          terminalId: t.terminalId,
          sequence,
          previousHash,
          time: job.timeS,
          kind: 'payment',
          path: 'offline',
          medium: 'qr',
          outcome: 'accepted',
          amount: fen(job.amountFen),
          merchantId: t.merchantId,
          trustListVersion: 1,
          denyListVersion: 1,
          policyVersion: 1,
          evidence: code.bytes,
          terminalSuite: 'p256',
        },
        signer,
      );
      previousHash = crypto.sha256(rec.bytes);
      batch.push(rec);
      if (batch.length === job.batchRecords || sequence === job.recordsPerTerminal) {
        batches.push(encodeUploadBatch(t.terminalId, batch));
        batch = [];
      }
    }
    out.push({ terminalId: t.terminalId, batches });
  }
  return out;
}

if (parentPort !== null) {
  const port = parentPort;
  signJournals(workerData as JournalJob).then(
    (journals) => port.postMessage(journals),
    (e: unknown) => {
      throw e;
    },
  );
}
