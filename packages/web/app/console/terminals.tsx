/**
 * Terminals and merchants. The operator registers a terminal and sees its one-time activation code
 * once, as text, as a link to the POS app and as a QR code; re-issues a code for a terminal not yet
 * activated; revokes one. A merchant sees only its own terminals (the platform filters them).
 */
import encodeQR from 'qr';
import { useState } from 'preact/hooks';
import { t } from '../shared/i18n.js';
import { ErrorBanner } from '../shared/ui.js';
import { arr, call, epochS, int, obj, type StaffRole, str, strOrNull } from './api.js';
import { ago, Confirm, Dot, Loading, parseIntInput, Section, useAction, useLoad } from './kit.js';
import { type DashboardTerminal, parseTerminal, statusWords } from './dashboard.js';

/** The scenes a terminal may serve (the protocol's SCENES, named for people). */
const SCENES: readonly { id: string; en: string; zh: string }[] = [
  { id: 'canteen', en: 'Canteen', zh: '食堂' },
  { id: 'shop', en: 'Shop', zh: '超市' },
  { id: 'bus', en: 'Bus', zh: '校车' },
  { id: 'gate', en: 'Gate', zh: '门禁' },
];

interface Merchant {
  readonly id: number;
  readonly name: string;
  readonly category: string;
}

interface TerminalRow {
  readonly id: number;
  readonly merchantId: number;
  readonly scene: string;
  readonly campus: number;
  readonly location: string;
  readonly status: string;
  readonly activatedAtS: number | null;
  readonly lastSeenS: number | null;
}

async function loadAll(
  role: StaffRole,
): Promise<{ terminals: TerminalRow[]; merchants: Merchant[]; live: Map<number, DashboardTerminal> }> {
  const [tl, ml, dash] = await Promise.all([
    call('GET', '/v1/terminals'),
    role === 'operator_admin' || role === 'merchant' ? call('GET', '/v1/merchants') : { merchants: [] },
    call('GET', '/v1/dashboard'),
  ]);
  const live = new Map(
    arr(obj(dash, 'dashboard').terminals, 'terminals')
      .map((v) => parseTerminal(v))
      .map((x) => [x.id, x] as const),
  );
  return {
    live,
    terminals: arr(obj(tl, 'terminals').terminals, 'terminals').map((v) => {
      const o = obj(v, 'terminal');
      return {
        id: int(o.id, 'terminal id'),
        merchantId: int(o.merchantId, 'merchantId'),
        scene: str(o.scene, 'scene'),
        campus: int(o.campus, 'campus'),
        location: str(o.location, 'location'),
        status: str(o.status, 'status'),
        activatedAtS: epochS(o.activatedAt, 'activatedAt'),
        lastSeenS: epochS(o.lastSeenAt, 'lastSeenAt'),
      };
    }),
    merchants: arr(obj(ml, 'merchants').merchants, 'merchants').map((v) => {
      const o = obj(v, 'merchant');
      return { id: int(o.id, 'merchant id'), name: str(o.name, 'merchant name'), category: strOrNull(o.category) ?? '' };
    }),
  };
}

/** A QR code drawn as one SVG path from the `qr` package's module grid (no image, no inline script). */
export function QrSvg({ text, size = 180 }: { text: string; size?: number }) {
  const grid = encodeQR(text, 'raw', { ecc: 'medium', border: 2 });
  let d = '';
  grid.forEach((row, y) => {
    row.forEach((on, x) => {
      if (on) d += `M${x} ${y}h1v1h-1z`;
    });
  });
  const n = grid.length;
  return (
    <svg class="qr" width={size} height={size} viewBox={`0 0 ${n} ${n}`} shape-rendering="crispEdges" data-testid="activation-qr">
      <title>{text}</title>
      <rect width={n} height={n} fill="#fff" />
      <path d={d} fill="#000" />
    </svg>
  );
}

function ActivationCode({ terminalId, code, onClose }: { terminalId: number; code: string; onClose: () => void }) {
  const link = `/pos/#activate=${code}`;
  const full = `${location.origin}${link}`;
  return (
    <div class="card activation" data-testid="activation">
      <h3>{t(`Activation code for terminal #${terminalId}`, `终端 #${terminalId} 的激活码`)}</h3>
      <p class="muted">
        {t('Shown once: open the link on the POS, or scan the QR code with it.', '仅显示一次：在收银终端上打开链接，或用其扫描二维码。')}
      </p>
      <div class="row">
        <QrSvg text={full} />
        <div class="stack">
          <code class="code" data-testid="activation-code">
            {code}
          </code>
          <a href={link} data-testid="activation-link" target="_blank" rel="noopener">
            {full}
          </a>
          <button type="button" onClick={onClose}>
            {t('Done', '完成')}
          </button>
        </div>
      </div>
    </div>
  );
}

export function TerminalsPage({ role }: { role: StaffRole }) {
  const loaded = useLoad(() => loadAll(role), [role]);
  const [shown, setShown] = useState<{ terminalId: number; code: string } | undefined>(undefined);
  const [revoking, setRevoking] = useState<TerminalRow | undefined>(undefined);
  const action = useAction();
  const admin = role === 'operator_admin';
  const d = loaded.data;
  if (d === undefined) return <Loading loaded={loaded} />;
  const merchantName = (id: number): string => d.merchants.find((m) => m.id === id)?.name ?? `#${id}`;
  const reissue = (id: number) =>
    action.run(async () => {
      const r = obj(await call('POST', `/v1/terminals/${id}/activation-code`), 'activation code');
      setShown({ terminalId: id, code: str(r.activationCode, 'activationCode') });
    });
  return (
    <div class="stack">
      {shown !== undefined && <ActivationCode terminalId={shown.terminalId} code={shown.code} onClose={() => setShown(undefined)} />}
      <ErrorBanner error={action.error} onClose={action.clear} />
      {admin && (
        <RegisterTerminal
          merchants={d.merchants}
          onRegistered={(s) => {
            setShown(s);
            loaded.reload();
          }}
        />
      )}
      <Section title={t('Terminals', '终端')}>
        <table data-testid="terminals">
          <thead>
            <tr>
              <th>#</th>
              <th>{t('Merchant', '商户')}</th>
              <th>{t('Location', '位置')}</th>
              <th>{t('Scene', '场景')}</th>
              <th>{t('Status', '状态')}</th>
              <th>{t('Last seen', '最近在线')}</th>
              <th>{t('Last sync', '最近同步')}</th>
              <th class="num">{t('Waiting', '待上传')}</th>
              {admin && <th />}
            </tr>
          </thead>
          <tbody>
            {d.terminals.map((x) => (
              <tr key={x.id} data-terminal={x.id} data-merchant={x.merchantId}>
                <td>
                  <Dot on={d.live.get(x.id)?.online === true} /> {x.id}
                </td>
                <td>{merchantName(x.merchantId)}</td>
                <td>{x.location}</td>
                <td>{SCENES.find((s) => s.id === x.scene)?.[t('en', 'zh') as 'en' | 'zh'] ?? x.scene}</td>
                <td>{statusWords(x.status)}</td>
                <td>{ago(d.live.get(x.id)?.lastSeenS ?? x.lastSeenS)}</td>
                <td>{ago(d.live.get(x.id)?.lastSyncS ?? null)}</td>
                <td class="num">{d.live.get(x.id)?.waiting ?? 0}</td>
                {admin && (
                  <td class="row">
                    {x.status === 'pending' && (
                      <button type="button" data-testid={`reissue-${x.id}`} disabled={action.busy} onClick={() => void reissue(x.id)}>
                        {t('New activation code', '重新生成激活码')}
                      </button>
                    )}
                    {x.status !== 'revoked' && (
                      <button type="button" class="danger" data-testid={`revoke-${x.id}`} onClick={() => setRevoking(x)}>
                        {t('Revoke', '吊销')}
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
      {admin && <MerchantsSection merchants={d.merchants} onCreated={loaded.reload} />}
      {revoking !== undefined && (
        <Confirm
          title={t(`Revoke terminal #${revoking.id}?`, `吊销终端 #${revoking.id}？`)}
          body={
            <p>{t('It can no longer accept payments; it may still upload what it holds.', '该终端将无法再收款，但仍可上传已有记录。')}</p>
          }
          confirmLabel={t('Revoke', '吊销')}
          danger
          error={action.error}
          onCancel={() => setRevoking(undefined)}
          onConfirm={() =>
            action.run(async () => {
              await call('POST', `/v1/terminals/${revoking.id}/revoke`);
              loaded.reload();
            })
          }
        />
      )}
    </div>
  );
}

function RegisterTerminal({
  merchants,
  onRegistered,
}: {
  merchants: readonly Merchant[];
  onRegistered: (s: { terminalId: number; code: string }) => void;
}) {
  const [merchantId, setMerchantId] = useState(String(merchants[0]?.id ?? ''));
  const [scene, setScene] = useState('canteen');
  const [campus, setCampus] = useState('1');
  const [location, setLocation] = useState('');
  const action = useAction();
  const m = parseIntInput(merchantId, 1, 2 ** 48);
  const c = parseIntInput(campus, 0, 0xffff);
  const okLocation = location.trim().length > 0 && location.trim().length <= 64;
  return (
    <Section title={t('Register a terminal', '登记终端')}>
      <form
        class="row wrap"
        data-testid="register-terminal"
        onSubmit={(e) => {
          e.preventDefault();
          if (m === undefined || c === undefined || !okLocation) return;
          void action.run(async () => {
            const r = obj(await call('POST', '/v1/terminals', { merchantId: m, scene, campus: c, location: location.trim() }), 'terminal');
            onRegistered({ terminalId: int(obj(r.terminal, 'terminal').id, 'terminal id'), code: str(r.activationCode, 'activationCode') });
            setLocation('');
          });
        }}
      >
        <label class="field">
          <span>{t('Merchant', '商户')}</span>
          <select value={merchantId} onChange={(e) => setMerchantId(e.currentTarget.value)}>
            {merchants.map((x) => (
              <option key={x.id} value={String(x.id)}>
                {x.name}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          <span>{t('Scene', '场景')}</span>
          <select value={scene} onChange={(e) => setScene(e.currentTarget.value)}>
            {SCENES.map((s) => (
              <option key={s.id} value={s.id}>
                {t(s.en, s.zh)}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          <span>{t('Campus', '校区')}</span>
          <input value={campus} maxLength={5} size={5} onInput={(e) => setCampus(e.currentTarget.value)} />
        </label>
        <label class="field">
          <span>{t('Location', '位置')}</span>
          <input value={location} maxLength={64} name="location" onInput={(e) => setLocation(e.currentTarget.value)} />
        </label>
        <button type="submit" class="primary" disabled={m === undefined || c === undefined || !okLocation || action.busy}>
          {t('Register', '登记')}
        </button>
      </form>
      <ErrorBanner error={action.error} onClose={action.clear} />
    </Section>
  );
}

function MerchantsSection({ merchants, onCreated }: { merchants: readonly Merchant[]; onCreated: () => void }) {
  const [name, setName] = useState('');
  const [category, setCategory] = useState('canteen');
  const action = useAction();
  const ok = name.trim().length > 0 && name.trim().length <= 100 && category.trim().length > 0 && category.trim().length <= 40;
  return (
    <Section title={t('Merchants', '商户')}>
      <table data-testid="merchants">
        <thead>
          <tr>
            <th>#</th>
            <th>{t('Name', '名称')}</th>
            <th>{t('Category', '类别')}</th>
          </tr>
        </thead>
        <tbody>
          {merchants.map((m) => (
            <tr key={m.id}>
              <td>{m.id}</td>
              <td>{m.name}</td>
              <td>{m.category}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (!ok) return;
          void action.run(async () => {
            await call('POST', '/v1/merchants', { name: name.trim(), category: category.trim() });
            setName('');
            onCreated();
          });
        }}
      >
        <input
          placeholder={t('New merchant name', '新商户名称')}
          value={name}
          maxLength={100}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        <input
          placeholder={t('Category', '类别')}
          value={category}
          maxLength={40}
          size={10}
          onInput={(e) => setCategory(e.currentTarget.value)}
        />
        <button type="submit" disabled={!ok || action.busy}>
          {t('Add merchant', '新增商户')}
        </button>
      </form>
      <ErrorBanner error={action.error} onClose={action.clear} />
    </Section>
  );
}
