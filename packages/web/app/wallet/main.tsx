/**
 * The Duet wallet app (issue 6): sign-in, the withholding agreement, then the offline code as a QR
 * that refreshes by itself, what is left offline and when the credential ends, history and top-up.
 * One tab drives the wallet; the rest of the page works with no network once installed.
 */
import '../shared/style.css';
import './wallet.css';
import { WalletError } from '@duet/wallet';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { errorWords } from '../shared/api.js';
import { t, useLang, words } from '../shared/i18n.js';
import { ErrorBanner, Header, registerServiceWorker } from '../shared/ui.js';
import { HistoryView } from './history.js';
import { PayView } from './pay.js';
import {
  why,
  type AgreementText,
  accept,
  agreement,
  agreementAccepted,
  login,
  type Opened,
  openWallet,
  parseHolderId,
  renew,
  type StoredSession,
  session,
  signOut,
  takeOverWhenFree,
  takeWalletLock,
} from './session.js';
import { TopUpView } from './topup.js';
import { openWalletDb, wipeWallet } from './vault.js';

type Phase =
  | { readonly kind: 'starting' }
  | { readonly kind: 'other-tab' }
  | { readonly kind: 'broken'; readonly error: unknown }
  | { readonly kind: 'signin' }
  | { readonly kind: 'agreement'; readonly s: StoredSession; readonly text: AgreementText }
  | { readonly kind: 'main' };

async function start(): Promise<{ phase: Phase; opened?: Opened }> {
  if (!(await takeWalletLock())) {
    takeOverWhenFree();
    return { phase: { kind: 'other-tab' } };
  }
  let opened: Opened;
  try {
    opened = await openWallet();
  } catch (e) {
    return { phase: { kind: 'broken', error: e } };
  }
  return { phase: opened.wallet.status().enrolled ? { kind: 'main' } : { kind: 'signin' }, opened };
}

function App() {
  useLang();
  const [phase, setPhase] = useState<Phase>({ kind: 'starting' });
  const [opened, setOpened] = useState<Opened>();
  useEffect(() => {
    start().then((r) => {
      if (r.opened !== undefined) setOpened(r.opened);
      setPhase(r.phase);
    });
  }, []);

  /** After sign-in: the agreement when not yet accepted, else straight to a credential. */
  async function enrol(s: StoredSession): Promise<void> {
    if (opened === undefined) return;
    const accepted = await agreementAccepted(s);
    if (accepted !== true || !opened.wallet.status().enrolled) {
      if (accepted !== true) {
        setPhase({ kind: 'agreement', s, text: await agreement(s) });
        return;
      }
      await renew(opened, s);
    }
    setPhase({ kind: 'main' });
  }

  return (
    <>
      <Header title={t('Duet wallet', 'Duet 钱包')} />
      <main class="wallet">
        {phase.kind === 'starting' && <p class="muted">{t('Opening the wallet…', '正在打开钱包…')}</p>}
        {phase.kind === 'other-tab' && (
          <div class="notice warn" data-testid="wallet-other-tab">
            {t(
              'The wallet is open in another tab. Use that tab, or close it and this one takes over: only one tab may make codes.',
              '钱包已在另一个标签页打开。请使用那个标签页，或将其关闭，本页会自动接管：同一时间只能有一个标签页生成付款码。',
            )}
          </div>
        )}
        {phase.kind === 'broken' && <Broken error={phase.error} />}
        {phase.kind === 'signin' && <SignIn onDone={enrol} />}
        {phase.kind === 'agreement' && opened !== undefined && (
          <Agreement
            text={phase.text}
            onAccept={async () => {
              await accept(phase.s, phase.text.version);
              await renew(opened, phase.s);
              setPhase({ kind: 'main' });
            }}
          />
        )}
        {phase.kind === 'main' && opened !== undefined && <Main opened={opened} onSignIn={() => setPhase({ kind: 'signin' })} />}
      </main>
    </>
  );
}

function Broken({ error }: { error: unknown }) {
  const code = error instanceof WalletError ? error.code : undefined;
  return (
    <div class="card">
      <ErrorBanner error={error instanceof WalletError ? words(error) : errorWords(error)} />
      {code !== undefined && (
        <button
          type="button"
          class="danger"
          data-testid="wallet-reset"
          onClick={async () => {
            if (!confirm(t('Reset this wallet? You will sign in again.', '重置本钱包？之后需重新登录。'))) return;
            await wipeWallet(await openWalletDb());
            session.set(undefined);
            location.reload();
          }}
        >
          {t('Reset the wallet', '重置钱包')}
        </button>
      )}
    </div>
  );
}

function SignIn({ onDone }: { onDone: (s: StoredSession) => Promise<void> }) {
  const [holder, setHolder] = useState(session.get()?.holderId.toString() ?? '');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  async function submit(ev: Event): Promise<void> {
    ev.preventDefault();
    const id = parseHolderId(holder);
    if (typeof id !== 'number') {
      setError(words(id));
      return;
    }
    if (password.length === 0 || password.length > 200) {
      setError(t('Enter your password', '请输入密码'));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await onDone(await login(id, password));
    } catch (e) {
      setError(why(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <form class="card signin" onSubmit={submit}>
      <h2>{t('Sign in', '登录')}</h2>
      <label>
        {t('Holder number', '持卡人编号')}
        <input
          data-testid="wallet-holder"
          inputMode="numeric"
          autoComplete="username"
          maxLength={15}
          value={holder}
          onInput={(e) => setHolder(e.currentTarget.value)}
        />
      </label>
      <label>
        {t('Password', '密码')}
        <input
          data-testid="wallet-password"
          type="password"
          autoComplete="current-password"
          maxLength={200}
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
      </label>
      <ErrorBanner error={error} />
      <button type="submit" class="primary" data-testid="wallet-login" disabled={busy}>
        {busy ? t('Signing in…', '正在登录…') : t('Sign in', '登录')}
      </button>
    </form>
  );
}

function Agreement({ text, onAccept }: { text: AgreementText; onAccept: () => Promise<void> }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  return (
    <div class="card agreement">
      <h2>{t('Withholding agreement', '代扣协议')}</h2>
      <p class="muted">{t(`Version ${text.version}, in both languages`, `第 ${text.version} 版，中英文`)}</p>
      <div class="agreement-text" lang="zh-CN" data-testid="agreement-zh">
        {text.zh}
      </div>
      <div class="agreement-text" lang="en" data-testid="agreement-en">
        {text.en}
      </div>
      <ErrorBanner error={error} />
      <button
        type="button"
        class="primary"
        data-testid="wallet-agree"
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          setError(undefined);
          try {
            await onAccept();
          } catch (e) {
            setError(why(e));
          } finally {
            setBusy(false);
          }
        }}
      >
        {t('I agree, activate offline payment', '同意并开通离线支付')}
      </button>
    </div>
  );
}

type Tab = 'pay' | 'history' | 'topup';

function Main({ opened, onSignIn }: { opened: Opened; onSignIn: () => void }) {
  const [tab, setTab] = useState<Tab>('pay');
  const tabs: [Tab, string][] = [
    ['pay', t('Pay', '付款')],
    ['history', t('History', '账单')],
    ['topup', t('Top up', '充值')],
  ];
  return (
    <>
      <nav class="tabs">
        {tabs.map(([id, label]) => (
          <button type="button" key={id} data-testid={`tab-${id}`} class={tab === id ? 'on' : ''} onClick={() => setTab(id)}>
            {label}
          </button>
        ))}
      </nav>
      {tab === 'pay' && <PayView opened={opened} onSignIn={onSignIn} />}
      {tab === 'history' && <HistoryView opened={opened} onSignIn={onSignIn} />}
      {tab === 'topup' && <TopUpView onSignIn={onSignIn} />}
      <p class="signout">
        <button
          type="button"
          class="link"
          data-testid="wallet-signout"
          onClick={async () => {
            if (
              !confirm(
                t(
                  'Sign out? The device key and the offline credential are erased from this phone; you will sign in and activate again.',
                  '退出登录？本机的设备密钥和离线凭证将被清除，之后需重新登录并开通。',
                ),
              )
            )
              return;
            await signOut(opened);
            location.reload();
          }}
        >
          {t('Sign out', '退出登录')}
        </button>
      </p>
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
registerServiceWorker();
