// Child of keygen.test.ts: makes `KEYS` keys of `SUITE` with the built node provider while the heap
// churns (so the garbage collector runs in the middle of key handling), then prints "done".
import { nodeCrypto } from '@duet/protocol/node';

const suite = nodeCrypto().suite(process.env.SUITE ?? 'p256');
const keys = Number(process.env.KEYS ?? 20_000);
const churn = [];
for (let i = 0; i < keys; i++) {
  const signer = await suite.generate();
  churn.push(`${signer.publicKey.join(',')}${'x'.repeat(i % 2_000)}`);
  if (churn.length > 5_000) churn.length = 0;
}
process.stdout.write('done\n');
