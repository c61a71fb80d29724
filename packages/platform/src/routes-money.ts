/**
 * Routes that move money or carry terminal traffic: top-ups, subsidies and credit lines; a holder's
 * purses; online authorization; record upload. And the administrative ones: staff accounts,
 * holder passwords, key rotation.
 */
import {
  checkCodeFreshness,
  checkCredentialValidity,
  CredentialCache,
  type TrustList,
  decodeCode,
  decodeTrustList,
  isProtocolError,
  verifyCodeSignature,
  verifyCredentialSignature,
  BATCH_MAX_BYTES,
} from '@duet/protocol';
import { type Static, Type } from '@sinclair/typebox';
import { nowS } from './context.js';
import { ApiError } from './errors.js';
import { getHolder, holderStandings } from './holders.js';
import { b64, type Call, fromB64, holderOf, type Route, staffOf, terminalOf, terminalPrincipal } from './http.js';
import { takeBatch } from './intake.js';
import type { KeyStore } from './keys.js';
import { credentialStandings } from './issuance.js';
import { OnlineAuthorizer } from './online-auth.js';
import { grantSubsidy, purses, setCreditLine, topUp } from './purses.js';
import { getTerminal, touchTerminal } from './registry.js';
import { currentSettings, type RiskSettings } from './settings.js';
import { prefetchKeys } from './signing-keys.js';

const IdParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,14}$' }) }, { additionalProperties: false });
const IdemKey = Type.String({ minLength: 8, maxLength: 100, pattern: '^[A-Za-z0-9._:-]+$' });
const TopUpBody = Type.Object(
  {
    amount: Type.Integer({ minimum: 1, maximum: 100_000_000 }),
    channel: Type.Union([Type.Literal('cashier'), Type.Literal('bank')]),
    idempotencyKey: IdemKey,
  },
  { additionalProperties: false },
);
const SubsidyBody = Type.Object(
  { amount: Type.Integer({ minimum: 1, maximum: 100_000_000 }), idempotencyKey: IdemKey },
  { additionalProperties: false },
);
const CreditLineBody = Type.Object({ limit: Type.Integer({ minimum: 0, maximum: 100_000_000 }) }, { additionalProperties: false });
const AuthorizeBody = Type.Object(
  {
    code: Type.String({ maxLength: 400, pattern: '^[A-Za-z0-9+/]*={0,2}$' }),
    amount: Type.Integer({ minimum: 1, maximum: 9_999_999 }),
    time: Type.Integer({ minimum: 0, maximum: 0xffff_ffff }),
  },
  { additionalProperties: false },
);
const StaffBody = Type.Object(
  {
    username: Type.String({ minLength: 3, maxLength: 64 }),
    password: Type.String({ minLength: 12, maxLength: 256 }),
    role: Type.Union([Type.Literal('operator_admin'), Type.Literal('school_finance'), Type.Literal('merchant')]),
    merchantId: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);
const PasswordBody = Type.Object({ password: Type.String({ minLength: 8, maxLength: 256 }) }, { additionalProperties: false });
const RoleBody = Type.Object(
  { role: Type.Union([Type.Literal('issuer'), Type.Literal('terminal_ca'), Type.Literal('list_signer')]) },
  { additionalProperties: false },
);

const idParam = (call: Call): number => Number(call.params.id);

/** How long the authorize path reuses the decoded trust list and settings: a rotation or a new policy shows within this. */
const HOT_CACHE_MS = 5_000;

/** Per-server caches for the online-authorization hot path. */
interface Hot {
  readonly credentials: CredentialCache;
  /** Group commit: concurrent authorizations share one transaction and one fsync. */
  authorizer?: OnlineAuthorizer;
  trust?: { at: number; list: TrustList; settings: RiskSettings };
}

/** Verifies a code online as a terminal would offline, against the platform's current trust list and settings. */
async function verifiedCode(call: Call, codeB64: string, hot: Hot) {
  const t = nowS(call.ctx);
  try {
    const code = decodeCode(fromB64(codeB64, 'code', 400));
    const nowMs = call.ctx.clock.nowMs();
    if (hot.trust === undefined || nowMs - hot.trust.at > HOT_CACHE_MS || nowMs < hot.trust.at) {
      hot.trust = {
        at: nowMs,
        list: decodeTrustList((await call.ctx.trust.current()).bytes),
        settings: (await currentSettings(call.ctx.db)).settings,
      };
    }
    const { list: trust, settings } = hot.trust;
    await verifyCredentialSignature(code.credential, trust, call.ctx.crypto, hot.credentials);
    await verifyCodeSignature(code, call.ctx.crypto);
    checkCredentialValidity(code.credential, t, settings.clockSkewS);
    checkCodeFreshness(code, t, { windowS: settings.codeWindowS, skewS: settings.clockSkewS });
    return code;
  } catch (e) {
    if (isProtocolError(e)) return { declined: `${e.code}: ${e.detail}` };
    throw e;
  }
}

export function moneyRoutes(keys: KeyStore): Route[] {
  const hot: Hot = { credentials: new CredentialCache(50_000) };
  return [
    {
      method: 'POST',
      url: '/v1/holders/:id/topups',
      access: { kind: 'staff', roles: ['operator_admin'] },
      summary: 'Top up a cash purse (cashier or bank), idempotent / 充值（幂等）',
      tags: ['money'],
      params: IdParams,
      body: TopUpBody,
      handle: async (call) => {
        const staff = staffOf(call);
        const b = call.body as Static<typeof TopUpBody>;
        await getHolder(call.ctx.db, idParam(call));
        // Keys are read before the transaction: a top-up that repays a debt publishes the lifted block.
        const signing = await prefetchKeys(call.ctx.keys);
        return topUp(
          call.ctx.db,
          { holderId: idParam(call), amount: b.amount, channel: b.channel, idempotencyKey: b.idempotencyKey, by: staff.username },
          nowS(call.ctx),
          { keys: signing },
        );
      },
    },
    {
      method: 'POST',
      url: '/v1/holders/:id/subsidies',
      access: { kind: 'staff', roles: ['school_finance'] },
      summary: 'Grant a school subsidy, idempotent / 发放补贴（幂等）',
      tags: ['money'],
      params: IdParams,
      body: SubsidyBody,
      handle: async (call) => {
        const staff = staffOf(call);
        const b = call.body as Static<typeof SubsidyBody>;
        await getHolder(call.ctx.db, idParam(call));
        return grantSubsidy(
          call.ctx.db,
          { holderId: idParam(call), amount: b.amount, idempotencyKey: b.idempotencyKey, by: staff.username },
          nowS(call.ctx),
        );
      },
    },
    {
      method: 'PUT',
      url: '/v1/holders/:id/credit-line',
      access: { kind: 'staff', roles: ['school_finance'] },
      summary: "Set a holder's school credit line / 设置学校授信额度",
      tags: ['money'],
      params: IdParams,
      body: CreditLineBody,
      handle: async (call) => {
        const staff = staffOf(call);
        await getHolder(call.ctx.db, idParam(call));
        return setCreditLine(
          call.ctx.db,
          { holderId: idParam(call), limit: (call.body as Static<typeof CreditLineBody>).limit, by: staff.username },
          nowS(call.ctx),
        );
      },
    },
    {
      method: 'GET',
      url: '/v1/holder/purses',
      access: { kind: 'holder' },
      summary: 'My purses / 我的钱包余额',
      tags: ['money'],
      handle: async (call) => purses(call.ctx.db, holderOf(call)),
    },
    {
      method: 'POST',
      url: '/v1/terminal/authorize',
      access: { kind: 'terminal' },
      summary: 'Online authorization: check and debit in real time / 联机授权',
      tags: ['terminal'],
      body: AuthorizeBody,
      handle: async (call) => {
        const { id: terminalId, merchantId } = terminalPrincipal(call);
        const b = call.body as Static<typeof AuthorizeBody>;
        const code = await verifiedCode(call, b.code, hot);
        if ('declined' in code) return { approved: false, reason: 'declined_online', detail: `code: ${code.declined}` };
        const c = code.credential;
        hot.authorizer ??= new OnlineAuthorizer(call.ctx.db, { holderCheck: holderStandings, credentialCheck: credentialStandings });
        return hot.authorizer.authorize(
          {
            terminalId,
            merchantId,
            holderId: c.holder,
            serial: c.serial,
            counter: code.counter,
            amount: b.amount,
            time: b.time,
          },
          nowS(call.ctx),
        );
      },
    },
    {
      method: 'POST',
      url: '/v1/terminal/upload',
      access: { kind: 'terminal', revokedMayCall: true },
      summary: 'Upload a batch of records; answers the highest contiguous sequence held / 上传交易记录',
      tags: ['terminal'],
      binary: { contentType: 'application/octet-stream', maxBytes: BATCH_MAX_BYTES },
      handle: async (call) => {
        const terminalId = terminalOf(call);
        const terminal = await getTerminal(call.ctx.db, terminalId);
        if (terminal.publicKey === null) throw new ApiError('forbidden', 'terminal not activated');
        const t = nowS(call.ctx);
        const publicKey = terminal.publicKey;
        const result = await takeBatch(call.ctx.db, call.ctx.crypto, terminalId, publicKey, call.raw, t);
        await touchTerminal(call.ctx.db, terminalId, t);
        if (result.stored > 0) call.ctx.clearing.kick();
        return result;
      },
    },
    {
      method: 'POST',
      url: '/v1/staff',
      access: { kind: 'staff', roles: ['operator_admin'] },
      summary: 'Create a staff account / 新建员工账号',
      tags: ['sessions'],
      body: StaffBody,
      handle: async (call) => {
        const b = call.body as Static<typeof StaffBody>;
        if (b.role === 'merchant' && b.merchantId === undefined)
          throw new ApiError('validation_failed', 'a merchant account needs merchantId');
        return call.ctx.auth.createStaff(b.username, b.password, b.role, b.merchantId ?? null);
      },
    },
    {
      method: 'POST',
      url: '/v1/holders/:id/password',
      access: { kind: 'staff_or_self', roles: ['operator_admin'] },
      summary: "Set a holder's password / 设置持卡人密码",
      tags: ['holders'],
      params: IdParams,
      body: PasswordBody,
      handle: async (call) => {
        await getHolder(call.ctx.db, idParam(call));
        await call.ctx.auth.setHolderPassword(idParam(call), (call.body as Static<typeof PasswordBody>).password);
        return { ok: true };
      },
    },
    {
      method: 'GET',
      url: '/v1/keys',
      access: { kind: 'staff', roles: ['operator_admin'] },
      summary: 'Platform keys and their states (public halves only) / 平台密钥',
      tags: ['keys'],
      handle: async () => ({ keys: (await keys.listKeys()).map((k) => ({ ...k, publicKey: b64(k.publicKey) })) }),
    },
    {
      method: 'POST',
      url: '/v1/keys/rotate',
      access: { kind: 'staff', roles: ['operator_admin'] },
      summary: 'Start a key rotation: the new key is listed before it is used / 开始密钥轮换',
      tags: ['keys'],
      body: RoleBody,
      handle: async (call) => {
        const r = await keys.rotate((call.body as Static<typeof RoleBody>).role, nowS(call.ctx));
        return { keyId: r.key.keyId, trustListVersion: r.trustList.listVersion };
      },
    },
    {
      method: 'POST',
      url: '/v1/keys/activate',
      access: { kind: 'staff', roles: ['operator_admin'] },
      summary: 'Finish a rotation: the new key signs from now on, the old one retires / 完成密钥轮换',
      tags: ['keys'],
      body: RoleBody,
      handle: async (call) => {
        const r = await keys.activatePending((call.body as Static<typeof RoleBody>).role, nowS(call.ctx));
        return { active: r.active.keyId, retired: r.retired?.keyId ?? null, trustListVersion: r.trustList.listVersion };
      },
    },
  ];
}
