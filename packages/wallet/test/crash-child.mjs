// Child process for crash.test.ts: opens the wallet folder with the BUILT packages (dist), then makes
// codes until it is killed, printing each counter only after nextCode() handed it out. A line is
// "<counter>" or, every 16th code, "<counter> <QR text>" so the parent can verify real codes.
// Usage: node crash-child.mjs <dir> <nowS> <counterBlock>
import { nodeCrypto } from '@duet/protocol/node';
import { openFileWallet } from '@duet/wallet/node';

const [dir, nowS, block] = process.argv.slice(2);
const clock = { nowMs: () => Number(nowS) * 1000 };
const wallet = await openFileWallet({ crypto: nodeCrypto(), clock, dir: String(dir), counterBlock: Number(block) });
process.stdout.write('ready\n'); // stdout to a pipe is synchronous on Linux: a printed line is out before the next code
for (let i = 0; ; i++) {
  const { code, text } = await wallet.nextCode();
  process.stdout.write(i % 16 === 0 ? `${code.counter} ${text}\n` : `${code.counter}\n`);
}
