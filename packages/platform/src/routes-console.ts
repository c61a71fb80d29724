/**
 * Routes for the web console and wallet (console.ts): the dashboard, a lost card, a holder's own
 * status and, when the operator turns it on, a holder's own top-up.
 */
import { type Static, Type } from '@sinclair/typebox';
import { dashboard, holderStatus, reportLostCard, type TerminalActivity } from './console.js';
import { nowS } from './context.js';
import { ApiError } from './errors.js';
import { getHolder } from './holders.js';
import { holderOf, type Route, staffOf } from './http.js';
import { topUp } from './purses.js';
import { prefetchKeys } from './signing-keys.js';

/** The most a holder tops up at once in the wallet (5,000 yuan). */
export const HOLDER_TOPUP_MAX_FEN = 500_000;

const IdParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,14}$' }) }, { additionalProperties: false });
const LostCardBody = Type.Object({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false });
const HolderTopUpBody = Type.Object(
  {
    amountFen: Type.Integer({ minimum: 1, maximum: HOLDER_TOPUP_MAX_FEN }),
    idempotencyKey: Type.String({ minLength: 8, maxLength: 64, pattern: '^[A-Za-z0-9._:-]+$' }),
  },
  { additionalProperties: false },
);

export interface ConsoleOptions {
  /** Where terminal calls are noted (undefined: only stored times are read). */
  readonly activity?: TerminalActivity;
  /** Holders may top up their own cash purse (PlatformOptions.holderTopUp). */
  readonly holderTopUp: boolean;
}

export function consoleRoutes(o: ConsoleOptions): Route[] {
  return [
    {
      method: 'GET',
      url: '/v1/dashboard',
      access: { kind: 'staff', roles: ['operator_admin', 'school_finance', 'merchant'] },
      summary: 'Dashboard: payments per minute, today, terminals, clearing, arrears, alerts (a merchant sees its own) / 运营看板',
      tags: ['console'],
      handle: async (call) => {
        const staff = staffOf(call);
        const scope = staff.role === 'merchant' ? { merchantId: staff.merchantId ?? -1 } : {};
        return dashboard(call.ctx.db, call.ctx.clock.nowMs(), scope, o.activity);
      },
    },
    {
      method: 'POST',
      url: '/v1/holders/:id/lost-card',
      access: { kind: 'staff', roles: ['operator_admin'] },
      summary: "Report a holder's card or phone lost: credentials revoked and deny-listed, devices lost, lists published / 挂失",
      tags: ['holders'],
      params: IdParams,
      body: LostCardBody,
      handle: async (call) => {
        const staff = staffOf(call);
        const b = (call.body ?? {}) as Static<typeof LostCardBody>;
        // Keys are read before the transaction that signs with them (see prefetchKeys).
        const keys = await prefetchKeys(call.ctx.keys);
        const t = nowS(call.ctx);
        const holderId = Number(call.params.id);
        return call.ctx.db.tx((q) => reportLostCard(q, keys, { holderId, reason: b.reason ?? 'lost', by: staff.username }, t));
      },
    },
    {
      method: 'GET',
      url: '/v1/holder/status',
      access: { kind: 'holder' },
      summary: 'My account: agreement, purses, devices, credentials, whether I can top up / 我的账户状态',
      tags: ['holders'],
      handle: async (call) => holderStatus(call.ctx.db, holderOf(call), nowS(call.ctx), o.holderTopUp),
    },
    {
      method: 'POST',
      url: '/v1/holder/topups',
      access: { kind: 'holder' },
      summary: 'Top up my own cash purse, idempotent; only where the operator turned it on / 自助充值（幂等）',
      tags: ['money'],
      body: HolderTopUpBody,
      handle: async (call) => {
        const holderId = holderOf(call);
        if (!o.holderTopUp) throw new ApiError('topup_unavailable');
        const b = call.body as Static<typeof HolderTopUpBody>;
        await getHolder(call.ctx.db, holderId);
        const signing = await prefetchKeys(call.ctx.keys);
        // The holder's keys live apart from the cashiers' and from other holders'.
        const r = await topUp(
          call.ctx.db,
          {
            holderId,
            amount: b.amountFen,
            channel: 'bank',
            idempotencyKey: `holder-${holderId}:${b.idempotencyKey}`,
            by: `holder:${holderId}`,
          },
          nowS(call.ctx),
          { keys: signing },
        );
        return { purse: 'cash', balanceFen: r.cashAfter, topupId: r.topUpId };
      },
    },
  ];
}
