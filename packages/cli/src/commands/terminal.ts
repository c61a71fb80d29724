/**
 * `duet terminal …`: the headless terminal a Linux POS runs. Its journal, lists, certificate and key
 * live in one SQLite file (WAL, synchronous=FULL) in its folder.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SCENES, type Scene } from '@duet/protocol';
import { nodeCrypto } from '@duet/protocol/node';
import { type Decision, type OnlineAuthorizer, systemClock, Terminal, Uploader } from '@duet/terminal';
import { SqliteJournal } from '@duet/terminal/sqlite';
import { CliError, type Command, flag, intOption, parseOptions, type ParsedOptions, str, toJsonLine } from '../command.js';
import { PlatformClient } from '@duet/protocol/client';
import { activate, onlineAuthorizer, PLATFORM_META, syncLists, upload } from '@duet/terminal/platform';
import { dataDir } from '../files.js';
import { boundedLines } from '../lines.js';
import { LocalIssuer } from '../local-issuer.js';

/** Longest scanner line we read: an amount, a tab and a code (~330 characters) with ample room. */
const SCAN_LINE_MAX_CHARS = 2048;

async function openTerminal(o: ParsedOptions, online = false): Promise<Terminal> {
  const dir = dataDir(str(o, 'dir'), 'terminal');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const journal = new SqliteJournal(join(dir, 'journal.db'));
  const crypto = nodeCrypto();
  if (!online || flag(o, 'offline')) return Terminal.open({ journal, crypto, clock: systemClock });
  // Online first: the authorizer needs the terminal's own identity, so it is bound after opening.
  let self: Terminal | undefined;
  const lazy: OnlineAuthorizer = {
    authorize: async (request, signal) => {
      const url = self === undefined ? undefined : await platformOf(self);
      if (self === undefined || url === undefined) throw new Error('no platform configured: decide offline');
      return onlineAuthorizer(self, new PlatformClient(url, crypto)).authorize(request, signal);
    },
  };
  self = await Terminal.open({ journal, crypto, clock: systemClock, online: lazy });
  return self;
}

function print(value: unknown): void {
  process.stdout.write(toJsonLine(value));
}

function decisionJson(d: Decision): Record<string, unknown> {
  return { ...d };
}

function sceneOption(v: string | undefined): Scene {
  const scene = SCENES.find((s) => s === (v ?? 'canteen'));
  if (scene === undefined)
    throw new CliError('bad_arguments', {
      en: `--scene must be one of ${SCENES.join(', ')}`,
      zh: `--scene 须为 ${SCENES.join('、')} 之一`,
    });
  return scene;
}

async function enroll(o: ParsedOptions): Promise<number> {
  const platformUrl = str(o, 'platform');
  if (platformUrl !== undefined) return enrollWithPlatform(o, platformUrl);
  const crypto = nodeCrypto();
  const issuer = await LocalIssuer.open(dataDir(str(o, 'issuer'), 'issuer'), crypto);
  const t = await openTerminal(o);
  if (t.state.snapshot.identity !== undefined) {
    throw new CliError('exists', { en: 'This terminal is already enrolled', zh: '该终端已注册' });
  }
  const nowS = Math.floor(Date.now() / 1000);
  const suite = issuer.rootKeys[0]?.suite ?? 'p256';
  // The terminal makes its own key: the issuer sees only the public half.
  const key = await crypto.suite(suite).generate();
  const raw = await key.exportPrivateKey();
  if (raw === undefined) throw new Error('a freshly made terminal key must be exportable to the journal');
  const { terminalId, certificate } = await issuer.certifyTerminal({
    publicKey: key.publicKey,
    scene: sceneOption(str(o, 'scene')),
    merchantId: intOption(str(o, 'merchant'), 'merchant', 1, 0xffff_ffff),
    campus: intOption(str(o, 'campus'), 'campus', 1, 0xffff),
    location: str(o, 'location') ?? 'Window 1 / 1 号窗口',
    nowS,
  });
  await t.pinRoots(issuer.rootKeys);
  const lists = issuer.lists();
  await t.state.installTrustList(lists.trustList, nowS);
  await t.state.installDenyList(lists.denyList, nowS);
  await t.state.installPolicy(lists.policy, nowS);
  const identity = await t.state.installIdentity(certificate, raw);
  await t.state.markSynced(nowS);
  await t.journal.close();
  print({ enrolled: true, terminal_id: terminalId, scene: identity.certificate.scene, merchant_id: identity.certificate.merchantId });
  return 0;
}

async function enrollWithPlatform(o: ParsedOptions, platformUrl: string): Promise<number> {
  const code = str(o, 'code');
  if (code === undefined) {
    throw new CliError('bad_arguments', {
      en: 'Enrolling with a platform needs --code ACTIVATION-CODE',
      zh: '向平台注册需要 --code 激活码',
    });
  }
  const crypto = nodeCrypto();
  const t = await openTerminal(o);
  try {
    if (t.state.snapshot.identity !== undefined)
      throw new CliError('exists', { en: 'This terminal is already enrolled', zh: '该终端已注册' });
    const nowS = Math.floor(Date.now() / 1000);
    const { terminalId } = await activate(t, new PlatformClient(platformUrl, crypto), crypto, code, nowS);
    print({ enrolled: true, terminal_id: terminalId, platform: platformUrl });
  } finally {
    await t.journal.close();
  }
  return 0;
}

async function platformOf(t: Terminal): Promise<string | undefined> {
  const raw = await t.journal.getMeta(PLATFORM_META);
  return raw === undefined ? undefined : new TextDecoder().decode(raw);
}

async function sync(o: ParsedOptions): Promise<number> {
  {
    const t = await openTerminal(o);
    const url = await platformOf(t);
    if (url !== undefined) {
      try {
        const client = new PlatformClient(url, nodeCrypto());
        const nowS = Math.floor(Date.now() / 1000);
        const { uploaded } = await upload(t, client);
        const lists = await syncLists(t, client, nowS);
        print({
          synced: true,
          platform: url,
          uploaded,
          acked_through: t.ackedSequence,
          deny_list_version: lists.denyVersion,
          deny_update: lists.denyKind,
        });
      } finally {
        await t.journal.close();
      }
      return 0;
    }
    await t.journal.close();
  }
  const crypto = nodeCrypto();
  const issuer = await LocalIssuer.open(dataDir(str(o, 'issuer'), 'issuer'), crypto);
  const t = await openTerminal(o);
  const nowS = Math.floor(Date.now() / 1000);
  let uploaded = 0;
  // The same Uploader a POS runs in the background, here flushed once against the local intake.
  const uploader = new Uploader(t, {
    transport: {
      upload: async (batch) => {
        const answer = await issuer.intake(batch);
        uploaded += answer.stored;
        return { ackedThrough: answer.ackedThrough };
      },
    },
  });
  await uploader.flush();
  const acked = t.ackedSequence;
  const lists = issuer.lists();
  await t.state.installTrustList(lists.trustList, nowS);
  await t.state.installDenyList(lists.denyList, nowS);
  await t.state.installPolicy(lists.policy, nowS);
  await t.state.markSynced(nowS);
  const s = t.state.snapshot;
  await t.journal.close();
  print({ synced: true, uploaded, acked_through: acked, deny_list_version: s.deny.version, policy_version: s.policy?.policyVersion });
  return 0;
}

async function pay(o: ParsedOptions): Promise<number> {
  const amount = str(o, 'amount');
  const code = str(o, 'code');
  if (amount === undefined || code === undefined) {
    throw new CliError('bad_arguments', {
      en: 'Usage: duet terminal pay --amount FEN --code TEXT',
      zh: '用法：duet terminal pay --amount 分 --code 付款码',
    });
  }
  const t = await openTerminal(o, true);
  const d = /^\d{1,15}$/.test(amount) ? await t.pay(Number(amount), code) : await t.pay(Number.NaN, code);
  await t.journal.close();
  print(decisionJson(d));
  return d.accepted ? 0 : 3;
}

async function scan(o: ParsedOptions): Promise<number> {
  const t = await openTerminal(o, true);
  for await (const { line, tooLong } of boundedLines(process.stdin, SCAN_LINE_MAX_CHARS)) {
    if (line.trim() === '' && !tooLong) continue;
    const tab = line.indexOf('\t');
    if (tooLong || tab < 0) {
      print({
        accepted: false,
        reason: 'input_malformed',
        words: { en: 'Scan not understood: expected AMOUNT<TAB>CODE', zh: '无法识别扫描输入：应为 金额<TAB>付款码' },
      });
      continue;
    }
    const amount = line.slice(0, tab).trim();
    const d = await t.pay(/^\d{1,15}$/.test(amount) ? Number(amount) : Number.NaN, line.slice(tab + 1));
    print(decisionJson(d));
  }
  await t.journal.close();
  return 0;
}

async function status(o: ParsedOptions): Promise<number> {
  const t = await openTerminal(o);
  const s = t.state.snapshot;
  const nowS = Math.floor(Date.now() / 1000);
  const pending = (await t.journal.pending(t.ackedSequence, 1_000_000)).length;
  await t.journal.close();
  print({
    enrolled: s.identity !== undefined,
    terminal_id: s.identity?.certificate.terminalId,
    scene: s.identity?.certificate.scene,
    head_sequence: t.headSequence,
    acked_through: t.ackedSequence,
    records_waiting_upload: pending,
    trust_list_version: s.trust?.listVersion,
    deny_list: { version: s.deny.version, entries: s.deny.size, age_s: s.deny.version === 0 ? null : nowS - s.deny.issuedAt },
    policy_version: s.policy?.policyVersion,
    last_sync_age_s: s.lastSyncS === 0 ? null : nowS - s.lastSyncS,
  });
  return 0;
}

export const terminalCommand: Command = {
  name: 'terminal',
  summary: { en: 'The headless terminal: enrol, sync, pay, scan, status', zh: '无界面终端：注册、同步、收款、扫码、状态' },
  usage: [
    'duet terminal enroll --platform URL --code ACTIVATION-CODE [--dir DIR]   activate against the platform',
    'duet terminal enroll [--issuer DIR] [--dir DIR] [--scene canteen|shop|bus|gate] [--merchant N] [--campus N] [--location TEXT]   (local issuer)',
    'duet terminal sync [--dir DIR]      upload records, fetch fresh lists (from the platform it enrolled with, else --issuer DIR)',
    'duet terminal pay --amount FEN --code TEXT [--dir DIR] [--offline]   one decision as JSON (exit 0 accepted, 3 declined);',
    '    online first when enrolled with a platform (300 ms budget, then offline by itself); --offline skips it',
    'duet terminal scan [--dir DIR] [--offline]   read AMOUNT<TAB>CODE lines on stdin, one JSON decision per line',
    'duet terminal status [--dir DIR]',
    '  --dir defaults to ./data/terminal, --issuer to ./data/issuer.',
  ].join('\n'),
  async run(args) {
    const o = parseOptions(args, {
      dir: { type: 'string' },
      issuer: { type: 'string' },
      scene: { type: 'string' },
      merchant: { type: 'string' },
      campus: { type: 'string' },
      location: { type: 'string' },
      amount: { type: 'string' },
      code: { type: 'string' },
      platform: { type: 'string' },
      offline: { type: 'boolean' },
    });
    switch (o.positionals[0]) {
      case 'enroll':
        return enroll(o);
      case 'sync':
        return sync(o);
      case 'pay':
        return pay(o);
      case 'scan':
        return scan(o);
      case 'status':
        return status(o);
      default:
        throw new CliError('bad_arguments', {
          en: 'Usage: duet terminal enroll|sync|pay|scan|status',
          zh: '用法：duet terminal enroll|sync|pay|scan|status',
        });
    }
  },
};
