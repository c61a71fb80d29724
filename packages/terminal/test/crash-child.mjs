/**
 * The process crash.test.ts kills. It runs the BUILT terminal (dist/, as production does) on a
 * SqliteJournal and pays pre-made codes in a loop; the parent SIGKILLs it at a random moment.
 *
 *   node crash-child.mjs <world.json> <codes.txt> <journal.db>
 *
 * Protocol on stdin/stdout, one line each (stdout writes to a pipe are synchronous on Linux, so a
 * line is out before the next payment starts):
 *   child → "loaded"                  modules imported; the journal is not touched yet
 *   parent → "go <replayIndex>"       open the journal now; re-present code <replayIndex> (-1: none)
 *   child → "R <reason>"              what the re-presented code got (must be "replay")
 *   child → "ready <head> <next>"     journal open at <head>; paying from code <next>
 *   child → "A <index> <sequence> <serial> <counter> <amount>"   printed only after pay() resolved
 *   child → "E <what>"                anything unexpected; the child exits 3
 */
import { readFileSync } from 'node:fs';
import { decodeRecord, equalBytes, fromHex, textToCodeBytes } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { Terminal } from '@duet/terminal';
import { SqliteJournal } from '@duet/terminal/sqlite';

const [worldPath, codesPath, dbPath] = process.argv.slice(2);
if (worldPath === undefined || codesPath === undefined || dbPath === undefined)
  fail('usage: crash-child.mjs <world.json> <codes.txt> <journal.db>');

function say(line) {
  process.stdout.write(`${line}\n`);
}

function fail(what) {
  say(`E ${what}`);
  process.exit(3);
}

function goLine() {
  return new Promise((resolve) => {
    let buffer = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl >= 0) resolve(buffer.slice(0, nl));
    });
    // The parent is gone (it failed or was stopped): never outlive it.
    process.stdin.on('end', () => process.exit(0));
  });
}

async function setUp(t, world, nowS) {
  await t.pinRoots(world.roots.map((r) => ({ keyId: r.keyId, suite: r.suite, publicKey: fromHex(r.publicKey) })));
  await t.state.installTrustList(fromHex(world.trust), nowS);
  await t.state.installDenyList(fromHex(world.deny), nowS);
  await t.state.installPolicy(fromHex(world.policy));
  await t.state.installIdentity(fromHex(world.cert), fromHex(world.key));
  await t.state.markSynced(nowS);
}

/** Where the journal says we left off: record k consumed code k-1, so the next code is the head. */
async function resumeAt(journal, head, codes) {
  if (head === 0) return 0;
  const [last] = await journal.pending(head - 1, 1);
  const expected = codes[head - 1];
  if (last === undefined || expected === undefined) fail(`head ${head} but no record or code to match it`);
  if (!equalBytes(decodeRecord(last).evidence, textToCodeBytes(expected.text))) fail(`record ${head} does not hold code ${head - 1}`);
  return head;
}

say('loaded');
const go = (await goLine()).split(' ');
const replayIndex = Number(go[1]);
const world = JSON.parse(readFileSync(worldPath, 'utf8'));
const codes = readFileSync(codesPath, 'utf8')
  .split('\n')
  .filter((l) => l.length > 0)
  .map((l) => {
    // "<text>\t<amount>": Base45 text may hold spaces, never a tab.
    const tab = l.lastIndexOf('\t');
    return { text: l.slice(0, tab), amount: Number(l.slice(tab + 1)) };
  });
const clock = { nowMs: () => world.t0S * 1000 };
const journal = new SqliteJournal(dbPath);
const t = await Terminal.open({ journal, crypto: nodeCrypto(), clock });
if (t.state.snapshot.identity === undefined) await setUp(t, world, world.t0S);
if (replayIndex >= 0) {
  const code = codes[replayIndex];
  if (code === undefined) fail(`no code ${replayIndex} to replay`);
  const d = await t.pay(code.amount, code.text);
  say(`R ${d.accepted ? 'accepted' : d.reason}`);
}
const next = await resumeAt(journal, t.headSequence, codes);
say(`ready ${t.headSequence} ${next}`);
for (let i = next; i < codes.length; i++) {
  const code = codes[i];
  const d = await t.pay(code.amount, code.text);
  if (!d.accepted) fail(`code ${i} declined: ${d.reason} ${d.detail ?? ''}`);
  say(`A ${i} ${d.sequence} ${d.serial} ${d.counter} ${d.amount}`);
}
say('exhausted');
// Out of codes: wait to be killed like every other run.
setInterval(() => undefined, 60_000);
