// Latency of Wallet.nextCode() on the file store (built packages: run `npm run build` first).
// Usage: node packages/wallet/bench/next-code.mjs [codes=2000] [counterBlock=64] [gapMs=0]
// gapMs paces the codes (a wallet screen makes one every few seconds); 0 is a tight loop.
// Prints JSON: percentiles of nextCode(), how many store writes (each one fsync of the file and one
// of the folder) the codes cost, and how many codes had to wait for one.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fen, signCredential } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { FileKeyVault, FileWalletStore, Wallet } from '@duet/wallet/node';

const codes = Number(process.argv[2] ?? 2000);
const block = Number(process.argv[3] ?? 64);
const gapMs = Number(process.argv[4] ?? 0);
const sleep = (t) => new Promise((r) => setTimeout(r, t));
const crypto = nodeCrypto();
const nowS = Math.floor(Date.now() / 1000);

class CountingStore extends FileWalletStore {
  saves = 0;
  saveMs = [];
  async save(state) {
    const t = performance.now();
    await super.save(state);
    this.saves++;
    this.saveMs.push(performance.now() - t);
  }
}

const dir = await mkdtemp(join(tmpdir(), 'duet-wallet-bench-'));
try {
  const store = new CountingStore(join(dir, 'wallet-state.json'));
  const vault = new FileKeyVault(join(dir, 'device-key.json'), crypto);
  const wallet = await Wallet.open({ crypto, clock: { nowMs: () => Date.now() }, vault, store, counterBlock: block });
  const issuer = await crypto.suite('p256').generate();
  const credential = await signCredential(
    {
      issuerSuite: 'p256',
      deviceSuite: wallet.suite,
      issuerKeyId: 10,
      serial: 1,
      holder: 1,
      campus: 1,
      role: 'student',
      scopes: ['canteen'],
      devicePublicKey: wallet.publicKey,
      limits: { perPayment: fen(5000), offlineTotal: fen(20000), offlineCount: 20 },
      notBefore: nowS - 60,
      notAfter: nowS + 72 * 3600,
    },
    issuer,
  );
  await wallet.installCredential(credential.bytes);
  for (let i = 0; i < 50; i++) await wallet.nextCode(); // warm up the JIT and the key cache
  const savesBefore = store.saves;
  const ms = [];
  for (let i = 0; i < codes; i++) {
    if (gapMs > 0) await sleep(gapMs);
    const t = performance.now();
    await wallet.nextCode();
    ms.push(performance.now() - t);
  }
  const saves = store.saves - savesBefore;
  const sorted = [...ms].sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  const saveSorted = [...store.saveMs].sort((a, b) => a - b);
  const r3 = (x) => Math.round(x * 1000) / 1000;
  console.log(
    JSON.stringify(
      {
        codes,
        counterBlock: block,
        gapMs,
        nextCodeMs: { p50: r3(q(50)), p90: r3(q(90)), p99: r3(q(99)), p999: r3(q(99.9)), max: r3(sorted.at(-1)) },
        storeWrites: saves,
        codesPerWrite: r3(codes / saves),
        storeWriteMs: { p50: r3(saveSorted[Math.floor(saveSorted.length / 2)]), max: r3(saveSorted.at(-1)) },
        codesOverOneMs: ms.filter((x) => x > 1).length,
      },
      null,
      2,
    ),
  );
  await wallet.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
