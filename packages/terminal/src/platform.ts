/**
 * The headless terminal against the real platform: activation with a one-time code and a key made
 * here, list sync, record upload through the Uploader, and online-first authorization.
 */
import { activationProofMessage, type CryptoProvider, SUITES } from '@duet/protocol';
import { b64, field, isNum, isStr, PlatformCallError, type PlatformClient, unb64 } from '@duet/protocol/client';
import type { OnlineAnswer, OnlineAuthorizer } from './ports.js';
import type { Terminal } from './terminal.js';
import { Uploader } from './uploader.js';

export const PLATFORM_META = 'platform_url';

function identity(t: Terminal) {
  const id = t.state.snapshot.identity;
  if (id === undefined) throw new PlatformCallError('not_enrolled', 'This terminal is not enrolled', '该终端未注册', 0);
  return { id: id.certificate.terminalId, signer: id.signer };
}

/** Activates this terminal with a one-time code: its key is made here and only its public half leaves. */
export async function activate(
  t: Terminal,
  client: PlatformClient,
  crypto: CryptoProvider,
  code: string,
  nowS: number,
): Promise<{ terminalId: number }> {
  const suite = 'p256';
  const key = await crypto.suite(suite).generate();
  const proof = await key.sign(activationProofMessage(code, suite, key.publicKey));
  const answer = await client.call('POST', '/v1/terminal/activate', {
    json: { code, suite, publicKey: b64(key.publicKey), proof: b64(proof) },
  });
  const roots = field(answer, 'roots', Array.isArray).map((r: unknown) => ({
    keyId: field(r, 'keyId', isNum),
    suite: SUITES.find((s) => s === field(r, 'suite', isStr)) ?? 'p256',
    publicKey: unb64(field(r, 'publicKey', isStr), 'root key'),
  }));
  await t.pinRoots(roots);
  const trust = await client.call('GET', '/v1/trust-list');
  await t.state.installTrustList(unb64(field(trust, 'trustList', isStr), 'trust list'), nowS);
  const raw = await key.exportPrivateKey();
  if (raw === undefined) throw new Error('a freshly made terminal key must be exportable to the journal');
  await t.state.installIdentity(unb64(field(answer, 'certificate', isStr), 'certificate'), raw);
  await t.journal.setMeta(PLATFORM_META, new TextEncoder().encode(client.baseUrl));
  await syncLists(t, client, nowS);
  return { terminalId: field(answer, 'terminalId', isNum) };
}

/** Fetches and installs the newest trust list, deny-list update and policy, reporting the journal head (the console's "waiting to upload"). */
export async function syncLists(t: Terminal, client: PlatformClient, nowS: number): Promise<{ denyKind: string; denyVersion: number }> {
  const s = t.state.snapshot;
  const path = `/v1/terminal/lists?deny=${s.deny.version}&policy=${s.policy?.policyVersion ?? 0}&head=${t.headSequence}`;
  const answer = await client.call('GET', path, { terminal: identity(t) });
  await t.state.installTrustList(unb64(field(answer, 'trustList', isStr), 'trust list'), nowS);
  const deny = field(answer, 'deny', (v): v is Record<string, unknown> => typeof v === 'object' && v !== null);
  for (const list of field(deny, 'lists', Array.isArray)) await t.state.installDenyList(unb64(list, 'deny list'), nowS);
  const policy = (answer as { policy?: unknown }).policy;
  if (policy !== null && policy !== undefined) await t.state.installPolicy(unb64(field(policy, 'bytes', isStr), 'policy'), nowS);
  await t.state.markSynced(nowS);
  return { denyKind: String(deny.kind), denyVersion: field(deny, 'version', isNum) };
}

/** Uploads every record not yet acknowledged, with the same Uploader a POS runs in the background. */
export async function upload(t: Terminal, client: PlatformClient): Promise<{ uploaded: number }> {
  let uploaded = 0;
  const uploader = new Uploader(t, {
    transport: {
      upload: async (batch, signal) => {
        const answer = await client.call('POST', '/v1/terminal/upload', { bytes: batch, terminal: identity(t), signal });
        uploaded += field(answer, 'stored', isNum);
        return { ackedThrough: field(answer, 'ackedThrough', isNum) };
      },
    },
  });
  await uploader.flush();
  return { uploaded };
}

/** Online-first: the platform authorizes within the terminal's budget; the terminal falls back by itself. */
export function onlineAuthorizer(t: Terminal, client: PlatformClient): OnlineAuthorizer {
  return {
    async authorize(request, signal): Promise<OnlineAnswer> {
      const answer = await client.call('POST', '/v1/terminal/authorize', {
        json: { code: b64(request.code), amount: request.amount, time: request.time },
        terminal: identity(t),
        signal,
      });
      if ((answer as { approved?: unknown }).approved === true)
        return { approved: true, authorization: String((answer as { authorization?: unknown }).authorization ?? '') };
      const reason = (answer as { reason?: unknown }).reason === 'insufficient_funds' ? 'insufficient_funds' : 'declined_online';
      return { approved: false, reason, detail: String((answer as { detail?: unknown }).detail ?? '') };
    },
  };
}
