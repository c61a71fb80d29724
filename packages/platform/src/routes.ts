/**
 * Every route of the platform API, as data. Access rules are checked before any handler runs
 * (http.ts); test/authz.test.ts walks this table and proves each route refuses every wrong caller.
 */
import { ID48_MAX, ROLES, SCENES, SUITES, type SuiteName } from '@duet/protocol';
import { type Static, Type } from '@sinclair/typebox';
import { holderCredentials, holderDevices, iso } from './console.js';
import { nowS } from './context.js';
import { ApiError } from './errors.js';
import {
  acceptAgreement,
  acceptedCurrent,
  createHolder,
  currentAgreement,
  getHolder,
  HOLDER_STATUSES,
  listHolders,
  publishAgreement,
  setHolderStatus,
} from './holders.js';
import { b64, type Call, fromB64, holderOf, type Route, staffOf, terminalOf } from './http.js';
import { issueCredential, newChallenge, registerDevice, revokeCredentialsOf } from './issuance.js';
import { purses } from './purses.js';
import { noteArrears } from './recovery.js';
import { denyEntries, denyListUpdate, latestPolicy, publishDenyList, publishPolicy, setDenied } from './lists.js';
import {
  activateTerminal,
  createMerchant,
  createTerminal,
  getTerminal,
  listMerchants,
  listTerminals,
  revokeTerminal,
  issueActivationCode,
  ACTIVATION_TTL_S,
  touchTerminal,
} from './registry.js';
import { currentSettings, parseSettings, saveSettings, worstCaseOfflineLoss } from './settings.js';
import { prefetchKeys } from './signing-keys.js';

const Id = Type.Integer({ minimum: 1, maximum: ID48_MAX });
const IdParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,14}$' }) }, { additionalProperties: false });
const Text = (max: number) => Type.String({ minLength: 1, maxLength: max });
const Base64 = (maxBytes: number) => Type.String({ maxLength: Math.ceil(maxBytes / 3) * 4 + 4, pattern: '^[A-Za-z0-9+/]*={0,2}$' });
const Suite = Type.Union(SUITES.map((s) => Type.Literal(s)));
const Pagination = Type.Object(
  {
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
    status: Type.Optional(Type.Union(HOLDER_STATUSES.map((s) => Type.Literal(s)))),
  },
  { additionalProperties: false },
);

const idParam = (call: Call): number => Number(call.params.id);
const body = <T>(call: Call, _schema: T): Static<T extends import('@sinclair/typebox').TSchema ? T : never> =>
  call.body as Static<T extends import('@sinclair/typebox').TSchema ? T : never>;

const ADMIN = ['operator_admin'] as const;
const MONEY = ['operator_admin', 'school_finance'] as const;

const LoginBody = Type.Object({ username: Text(64), password: Text(256) }, { additionalProperties: false });
const HolderLoginBody = Type.Object({ holderId: Id, password: Text(256) }, { additionalProperties: false });
const NewHolderBody = Type.Object(
  {
    id: Id,
    name: Text(100),
    role: Type.Union(ROLES.map((r) => Type.Literal(r))),
    campus: Type.Integer({ minimum: 0, maximum: 0xffff }),
    password: Type.Optional(Text(256)),
  },
  { additionalProperties: false },
);
const ReasonBody = Type.Object({ reason: Text(500) }, { additionalProperties: false });
const AgreementBody = Type.Object({ textEn: Text(20_000), textZh: Text(20_000) }, { additionalProperties: false });
const AcceptBody = Type.Object({ version: Type.Integer({ minimum: 1 }), device: Text(200) }, { additionalProperties: false });
const DeviceBody = Type.Object(
  { suite: Suite, publicKey: Base64(33), challenge: Base64(64), proof: Base64(64), label: Text(100) },
  { additionalProperties: false },
);
const CredentialBody = Type.Object({ deviceId: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });
const MerchantBody = Type.Object({ name: Text(100), category: Text(40) }, { additionalProperties: false });
const TerminalBody = Type.Object(
  {
    merchantId: Type.Integer({ minimum: 1 }),
    scene: Type.Union(SCENES.map((s) => Type.Literal(s))),
    campus: Type.Integer({ minimum: 0, maximum: 0xffff }),
    location: Text(64),
  },
  { additionalProperties: false },
);
const ActivateBody = Type.Object(
  { code: Text(40), suite: Suite, publicKey: Base64(33), proof: Base64(64) },
  { additionalProperties: false },
);
const ListsQuery = Type.Object(
  {
    deny: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffff_ffff })),
    policy: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffff_ffff })),
    /** The terminal's highest journal sequence (the dashboard's "waiting to upload"). */
    head: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  },
  { additionalProperties: false },
);
const DenyBody = Type.Object(
  {
    type: Type.Union([Type.Literal('credential'), Type.Literal('holder'), Type.Literal('card')]),
    id: Id,
    denied: Type.Boolean(),
    reason: Text(500),
  },
  { additionalProperties: false },
);

export const coreRoutes: Route[] = [
  // Sessions
  {
    method: 'POST',
    url: '/v1/staff/login',
    access: { kind: 'public' },
    summary: 'Staff sign-in / 员工登录',
    tags: ['sessions'],
    body: LoginBody,
    handle: async (call) => {
      const b = body(call, LoginBody);
      return call.ctx.auth.staffLogin(b.username, b.password, call.address);
    },
  },
  {
    method: 'POST',
    url: '/v1/holder/login',
    access: { kind: 'public' },
    summary: 'Holder sign-in / 持卡人登录',
    tags: ['sessions'],
    body: HolderLoginBody,
    handle: async (call) => {
      const b = body(call, HolderLoginBody);
      return call.ctx.auth.holderLogin(b.holderId, b.password, call.address);
    },
  },
  {
    method: 'POST',
    url: '/v1/logout',
    access: { kind: 'session' },
    summary: 'Sign out / 退出登录',
    tags: ['sessions'],
    handle: async (call) => {
      const h = call.req.headers.authorization;
      if (typeof h === 'string') await call.ctx.auth.logout(h.slice(7).trim());
      return { ok: true };
    },
  },
  // Trust list: public, so anyone can check what the platform's keys are.
  {
    method: 'GET',
    url: '/v1/trust-list',
    access: { kind: 'public' },
    summary: 'The current signed trust list and the root keys / 当前信任列表与根公钥',
    tags: ['lists'],
    handle: async (call) => {
      const t = await call.ctx.trust.current();
      const roots = await call.ctx.trust.roots();
      return {
        version: t.version,
        trustList: b64(t.bytes),
        roots: roots.map((r) => ({ keyId: r.keyId, suite: r.suite, publicKey: b64(r.publicKey) })),
      };
    },
  },
  // Holders
  {
    method: 'POST',
    url: '/v1/holders',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Create a holder / 新建持卡人',
    tags: ['holders'],
    body: NewHolderBody,
    handle: async (call) => {
      const b = body(call, NewHolderBody);
      const h = await call.ctx.db.tx((q) => createHolder(q, { id: b.id, name: b.name, role: b.role, campus: b.campus }, nowS(call.ctx)));
      if (b.password !== undefined) await call.ctx.auth.setHolderPassword(h.id, b.password);
      return h;
    },
  },
  {
    method: 'GET',
    url: '/v1/holders',
    access: { kind: 'staff', roles: MONEY },
    summary: 'List holders / 持卡人列表',
    tags: ['holders'],
    query: Pagination,
    handle: async (call) => {
      const q = call.query as Static<typeof Pagination>;
      return {
        holders: await listHolders(call.ctx.db, {
          offset: q.offset ?? 0,
          limit: q.limit ?? 100,
          ...(q.status !== undefined ? { status: q.status } : {}),
        }),
      };
    },
  },
  {
    method: 'GET',
    url: '/v1/holders/:id',
    access: { kind: 'staff_or_self', roles: MONEY },
    summary: 'A holder, with purses and agreement / 持卡人详情',
    tags: ['holders'],
    params: IdParams,
    handle: async (call) => {
      const id = idParam(call);
      const db = call.ctx.db;
      const holder = await getHolder(db, id);
      const accepted = await acceptedCurrent(db, id);
      return {
        holder,
        blocked: holder.status !== 'active',
        agreement:
          accepted === undefined ? null : { version: accepted.version, acceptedAt: iso(accepted.acceptedAt), device: accepted.device },
        purses: await purses(db, id),
        devices: await holderDevices(db, id),
        credentials: await holderCredentials(db, id, nowS(call.ctx)),
      };
    },
  },
  {
    method: 'POST',
    url: '/v1/holders/:id/block',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Block a holder (deny-listed at once) / 冻结持卡人',
    tags: ['holders'],
    params: IdParams,
    body: ReasonBody,
    handle: async (call) => {
      // Keys are read before the transaction that signs with them (see prefetchKeys).
      const keys = await prefetchKeys(call.ctx.keys);
      const staff = staffOf(call);
      const reason = body(call, ReasonBody).reason;
      const t = nowS(call.ctx);
      const h = await call.ctx.db.tx(async (q) => {
        const held = await setHolderStatus(q, idParam(call), 'blocked', reason, staff.username, t);
        await setDenied(q, 'holder', held.id, true, reason, t);
        for (const serial of await revokeCredentialsOf(q, held.id, t)) await setDenied(q, 'credential', serial, true, reason, t);
        await publishDenyList(q, keys, t);
        return held;
      });
      return h;
    },
  },
  {
    method: 'POST',
    url: '/v1/holders/:id/unblock',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Lift a block, with a recorded reason / 解除冻结',
    tags: ['holders'],
    params: IdParams,
    body: ReasonBody,
    handle: async (call) => {
      // Keys are read before the transaction that signs with them (see prefetchKeys).
      const keys = await prefetchKeys(call.ctx.keys);
      const staff = staffOf(call);
      const reason = body(call, ReasonBody).reason;
      const t = nowS(call.ctx);
      return call.ctx.db.tx(async (q) => {
        const h = await setHolderStatus(q, idParam(call), 'active', reason, staff.username, t);
        await setDenied(q, 'holder', h.id, false, reason, t);
        // Lifting an operator's block does not forgive a debt: a holder in arrears stays denied for it.
        await noteArrears(q, [h.id], t);
        await publishDenyList(q, keys, t);
        return h;
      });
    },
  },
  // Agreement
  {
    method: 'POST',
    url: '/v1/agreements',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Publish a new withholding agreement version / 发布代扣协议新版本',
    tags: ['enrolment'],
    body: AgreementBody,
    handle: async (call) => {
      const b = body(call, AgreementBody);
      return call.ctx.db.tx((q) => publishAgreement(q, b.textEn, b.textZh, nowS(call.ctx)));
    },
  },
  {
    method: 'GET',
    url: '/v1/holder/agreement',
    access: { kind: 'holder' },
    summary: 'The current withholding agreement / 当前代扣协议',
    tags: ['enrolment'],
    handle: async (call) => currentAgreement(call.ctx.db),
  },
  {
    method: 'POST',
    url: '/v1/holder/agreement',
    access: { kind: 'holder' },
    summary: 'Accept the withholding agreement / 签署代扣协议',
    tags: ['enrolment'],
    body: AcceptBody,
    handle: async (call) => {
      const b = body(call, AcceptBody);
      await call.ctx.db.tx((q) => acceptAgreement(q, holderOf(call), b.version, b.device, nowS(call.ctx)));
      return { accepted: true, version: b.version };
    },
  },
  // Device enrolment and credentials
  {
    method: 'POST',
    url: '/v1/holder/challenge',
    access: { kind: 'holder' },
    summary: 'A fresh challenge for proof of possession / 获取设备密钥证明挑战',
    tags: ['enrolment'],
    handle: async (call) => ({
      challenge: b64(await call.ctx.db.tx((q) => newChallenge(q, call.ctx.crypto, holderOf(call), nowS(call.ctx)))),
    }),
  },
  {
    method: 'POST',
    url: '/v1/holder/devices',
    access: { kind: 'holder' },
    summary: 'Register a device key with proof of possession / 注册设备密钥',
    tags: ['enrolment'],
    body: DeviceBody,
    handle: async (call) => {
      const b = body(call, DeviceBody);
      const deviceId = await call.ctx.db.tx((q) =>
        registerDevice(
          q,
          call.ctx.crypto,
          holderOf(call),
          {
            suite: b.suite as SuiteName,
            devicePublicKey: fromB64(b.publicKey, 'publicKey', 33),
            challenge: fromB64(b.challenge, 'challenge', 64),
            proof: fromB64(b.proof, 'proof', 64),
            label: b.label,
          },
          nowS(call.ctx),
        ),
      );
      return { deviceId };
    },
  },
  {
    method: 'POST',
    url: '/v1/holder/credentials',
    access: { kind: 'holder' },
    summary: 'Issue or renew the offline credential for a device / 签发或更新离线凭证',
    tags: ['enrolment'],
    body: CredentialBody,
    handle: async (call) => {
      // Keys are read before the transaction that signs with them (see prefetchKeys).
      const keys = await prefetchKeys(call.ctx.keys);
      const b = body(call, CredentialBody);
      const c = await call.ctx.db.tx((q) => issueCredential(q, keys, { holderId: holderOf(call), deviceId: b.deviceId }, nowS(call.ctx)));
      return { serial: c.serial, credential: b64(c.bytes), notAfter: c.notAfter, limits: c.limits };
    },
  },
  // Merchants and terminals
  {
    method: 'POST',
    url: '/v1/merchants',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Create a merchant / 新建商户',
    tags: ['registry'],
    body: MerchantBody,
    handle: async (call) => {
      const b = body(call, MerchantBody);
      return call.ctx.db.tx((q) => createMerchant(q, b.name, b.category, nowS(call.ctx)));
    },
  },
  {
    method: 'GET',
    url: '/v1/merchants',
    access: { kind: 'staff', roles: ['operator_admin', 'school_finance', 'merchant'] },
    summary: 'Merchants (a merchant sees only itself) / 商户列表',
    tags: ['registry'],
    handle: async (call) => {
      const staff = staffOf(call);
      const all = await listMerchants(call.ctx.db);
      return { merchants: staff.role === 'merchant' ? all.filter((m) => m.id === staff.merchantId) : all };
    },
  },
  {
    method: 'POST',
    url: '/v1/terminals',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Register a terminal and get its one-time activation code / 登记终端并获取一次性激活码',
    tags: ['registry'],
    body: TerminalBody,
    handle: async (call) => {
      const b = body(call, TerminalBody);
      return call.ctx.db.tx((q) => createTerminal(q, call.ctx.crypto, b, nowS(call.ctx)));
    },
  },
  {
    method: 'GET',
    url: '/v1/terminals',
    access: { kind: 'staff', roles: ['operator_admin', 'merchant'] },
    summary: 'Terminals with their last sync (a merchant sees only its own) / 终端列表',
    tags: ['registry'],
    handle: async (call) => {
      const staff = staffOf(call);
      const list = await listTerminals(call.ctx.db, staff.role === 'merchant' ? (staff.merchantId ?? -1) : undefined);
      return { terminals: list.map((t) => ({ ...t, publicKey: t.publicKey === null ? null : b64(t.publicKey) })) };
    },
  },
  {
    method: 'POST',
    url: '/v1/terminals/:id/revoke',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Revoke a terminal / 吊销终端',
    tags: ['registry'],
    params: IdParams,
    handle: async (call) => {
      await call.ctx.db.tx((q) => revokeTerminal(q, idParam(call), nowS(call.ctx)));
      return { revoked: true };
    },
  },
  {
    method: 'POST',
    url: '/v1/terminals/:id/activation-code',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'A new one-time activation code for a terminal not yet activated / 重新生成终端激活码',
    tags: ['registry'],
    params: IdParams,
    handle: async (call) => {
      const id = idParam(call);
      const code = await call.ctx.db.tx((q) => issueActivationCode(q, call.ctx.crypto, id, nowS(call.ctx)));
      return { terminalId: id, activationCode: code, expiresAt: nowS(call.ctx) + ACTIVATION_TTL_S };
    },
  },
  {
    method: 'POST',
    url: '/v1/terminal/activate',
    access: { kind: 'activation' },
    summary: 'Activate a terminal with its one-time code and its new key / 终端激活',
    tags: ['terminal'],
    body: ActivateBody,
    handle: async (call) => {
      // Keys are read before the transaction that signs with them (see prefetchKeys).
      const keys = await prefetchKeys(call.ctx.keys);
      const b = body(call, ActivateBody);
      const { terminal, certificate } = await call.ctx.db.tx((q) =>
        activateTerminal(
          q,
          call.ctx.crypto,
          keys,
          {
            code: b.code,
            suite: b.suite as SuiteName,
            publicKey: fromB64(b.publicKey, 'publicKey', 33),
            proof: fromB64(b.proof, 'proof', 64),
          },
          nowS(call.ctx),
        ),
      );
      const roots = await call.ctx.trust.roots();
      return {
        terminalId: terminal.id,
        certificate: b64(certificate),
        roots: roots.map((r) => ({ keyId: r.keyId, suite: r.suite, publicKey: b64(r.publicKey) })),
      };
    },
  },
  {
    method: 'GET',
    url: '/v1/terminal/lists',
    access: { kind: 'terminal' },
    summary: 'Trust list, deny-list update and risk policy for a terminal / 终端名单同步',
    tags: ['terminal'],
    query: ListsQuery,
    handle: async (call) => {
      const id = terminalOf(call);
      const q = call.query as Static<typeof ListsQuery>;
      const db = call.ctx.db;
      await touchTerminal(db, id, nowS(call.ctx), q.head === undefined ? {} : { head: q.head });
      const trust = await call.ctx.trust.current();
      const deny = await denyListUpdate(db, q.deny ?? 0);
      const policy = await latestPolicy(db);
      if (policy === undefined) throw new ApiError('not_found', 'no risk policy published yet');
      const t = await getTerminal(db, id);
      return {
        trustList: b64(trust.bytes),
        deny: { version: deny.version, kind: deny.kind, lists: deny.lists.map(b64) },
        policy: q.policy === policy.version ? null : { version: policy.version, bytes: b64(policy.bytes) },
        terminal: { id: t.id, status: t.status },
      };
    },
  },
  // Risk settings and lists
  {
    method: 'GET',
    url: '/v1/settings',
    access: { kind: 'staff', roles: MONEY },
    summary: 'Risk settings / 风控参数',
    tags: ['risk'],
    handle: async (call) => currentSettings(call.ctx.db),
  },
  {
    method: 'POST',
    url: '/v1/settings/preview',
    access: { kind: 'staff', roles: MONEY },
    summary: 'The worst-case offline loss per holder under proposed settings, before saving / 预览最坏离线损失',
    tags: ['risk'],
    body: Type.Object({ settings: Type.Unknown() }, { additionalProperties: false }),
    handle: async (call) => {
      const s = parseSettings((call.body as { settings: unknown }).settings);
      const n = await call.ctx.db.one<{ n: number }>("SELECT COUNT(*) AS n FROM terminals WHERE status = 'active'");
      return { settings: s, worstCase: worstCaseOfflineLoss(s, Number(n?.n ?? 0)) };
    },
  },
  {
    method: 'PUT',
    url: '/v1/settings',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Save risk settings and publish the signed policy / 保存风控参数并发布策略',
    tags: ['risk'],
    body: Type.Object({ settings: Type.Unknown() }, { additionalProperties: false }),
    handle: async (call) => {
      // Keys are read before the transaction that signs with them (see prefetchKeys).
      const keys = await prefetchKeys(call.ctx.keys);
      const staff = staffOf(call);
      const s = parseSettings((call.body as { settings: unknown }).settings);
      const t = nowS(call.ctx);
      return call.ctx.db.tx(async (q) => {
        const version = await saveSettings(q, s, staff.username, t);
        const policy = await publishPolicy(q, keys, t);
        await publishDenyList(q, keys, t);
        return { version, policyVersion: policy.policyVersion };
      });
    },
  },
  {
    method: 'GET',
    url: '/v1/deny-entries',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Current deny entries with reasons / 当前黑名单',
    tags: ['lists'],
    handle: async (call) => ({ entries: await denyEntries(call.ctx.db) }),
  },
  {
    method: 'POST',
    url: '/v1/deny-entries',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Deny or allow a credential, holder or card (for example a lost card) and publish / 加入或移出黑名单并发布',
    tags: ['lists'],
    body: DenyBody,
    handle: async (call) => {
      // Keys are read before the transaction that signs with them (see prefetchKeys).
      const keys = await prefetchKeys(call.ctx.keys);
      const b = body(call, DenyBody);
      const t = nowS(call.ctx);
      return call.ctx.db.tx(async (q) => {
        const changed = await setDenied(q, b.type, b.id, b.denied, b.reason, t);
        const published = await publishDenyList(q, keys, t);
        return { changed, version: published.version };
      });
    },
  },
  {
    method: 'POST',
    url: '/v1/lists/publish',
    access: { kind: 'staff', roles: ADMIN },
    summary: 'Publish fresh deny list and policy versions now / 立即发布名单与策略',
    tags: ['lists'],
    handle: async (call) => {
      // Keys are read before the transaction that signs with them (see prefetchKeys).
      const keys = await prefetchKeys(call.ctx.keys);
      const t = nowS(call.ctx);
      return call.ctx.db.tx(async (q) => ({
        deny: (await publishDenyList(q, keys, t)).version,
        policy: (await publishPolicy(q, keys, t)).policyVersion,
      }));
    },
  },
];
