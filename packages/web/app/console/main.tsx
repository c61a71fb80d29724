/**
 * The Duet operator console (issue 6): sign-in, hash routes, and navigation that shows each role
 * only what the platform lets it use (the `access.roles` of each route in packages/platform/src).
 */
import '../shared/style.css';
import './console.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { t, useLang } from '../shared/i18n.js';
import { ErrorBanner, Header, registerServiceWorker } from '../shared/ui.js';
import {
  failureWords,
  loadSession,
  onSessionChange,
  roleWords,
  type StaffRole,
  type StaffSession,
  signIn,
  signOut,
  signedOutWhy,
} from './api.js';
import { ClearingPage } from './clearing.js';
import { DashboardPage } from './dashboard.js';
import { HolderDetail, HoldersPage } from './holders.js';
import { DenyPage, PolicyPage } from './lists.js';
import { LedgerPage, RecoveryPage, StatementsPage } from './money.js';
import { TerminalsPage } from './terminals.js';

export type PageId = 'dashboard' | 'holders' | 'terminals' | 'deny' | 'policy' | 'clearing' | 'recovery' | 'statements' | 'ledger';

const ADMIN: readonly StaffRole[] = ['operator_admin'];
const MONEY: readonly StaffRole[] = ['operator_admin', 'school_finance'];
const ALL: readonly StaffRole[] = ['operator_admin', 'school_finance', 'merchant'];

/** Each screen, the roles that may open it (as the platform's routes allow), and its name. */
const PAGES: readonly { id: PageId; roles: readonly StaffRole[]; name: () => string }[] = [
  { id: 'dashboard', roles: ALL, name: () => t('Dashboard', '总览') },
  { id: 'holders', roles: MONEY, name: () => t('Holders', '持卡人') },
  { id: 'terminals', roles: ['operator_admin', 'merchant'], name: () => t('Terminals', '终端') },
  { id: 'deny', roles: ADMIN, name: () => t('Deny list', '黑名单') },
  { id: 'policy', roles: MONEY, name: () => t('Risk policy', '风控策略') },
  { id: 'clearing', roles: MONEY, name: () => t('Clearing', '清分') },
  { id: 'recovery', roles: MONEY, name: () => t('Recovery', '欠款追收') },
  { id: 'statements', roles: ALL, name: () => t('Statements', '对账单') },
  { id: 'ledger', roles: MONEY, name: () => t('Ledger audit', '账本审计') },
];

export interface Route {
  readonly page: PageId;
  /** The rest of the path: a holder id, a flag id. */
  readonly rest: readonly string[];
}

function parseHash(hash: string): Route {
  const parts = hash
    .replace(/^#\/?/, '')
    .split('/')
    .filter((p) => p !== '')
    .slice(0, 4);
  const page = PAGES.find((p) => p.id === parts[0])?.id ?? 'dashboard';
  return { page, rest: parts.slice(1) };
}

function useRoute(): Route {
  const [route, set] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = (): void => set(parseHash(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function useSession(): StaffSession | undefined {
  const [s, set] = useState(loadSession);
  useEffect(() => onSessionChange(() => set(loadSession())), []);
  return s;
}

function SignIn() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | undefined>(signedOutWhy());
  const [busy, setBusy] = useState(false);
  return (
    <main class="signin">
      <form
        class="card"
        data-testid="signin"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          try {
            await signIn(username.trim(), password);
            if (location.hash === '' || location.hash === '#/') location.hash = '#/dashboard';
          } catch (err) {
            setError(failureWords(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <h2>{t('Staff sign-in', '员工登录')}</h2>
        <ErrorBanner error={error} />
        <label class="field">
          <span>{t('Username', '用户名')}</span>
          <input
            name="username"
            autocomplete="username"
            maxLength={64}
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
          />
        </label>
        <label class="field">
          <span>{t('Password', '密码')}</span>
          <input
            name="password"
            type="password"
            autocomplete="current-password"
            maxLength={256}
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <button type="submit" class="primary" disabled={busy} data-testid="signin-submit">
          {t('Sign in', '登录')}
        </button>
      </form>
    </main>
  );
}

function Screen({ route, role }: { route: Route; role: StaffRole }) {
  const page = PAGES.find((p) => p.id === route.page);
  if (page === undefined || !page.roles.includes(role))
    return <ErrorBanner error={t('Not allowed for your role', '当前角色无权执行此操作')} />;
  switch (route.page) {
    case 'dashboard':
      return <DashboardPage role={role} />;
    case 'holders':
      return route.rest[0] === undefined ? <HoldersPage /> : <HolderDetail id={route.rest[0]} role={role} />;
    case 'terminals':
      return <TerminalsPage role={role} />;
    case 'deny':
      return <DenyPage />;
    case 'policy':
      return <PolicyPage role={role} />;
    case 'clearing':
      return <ClearingPage role={role} flag={route.rest[0]} />;
    case 'recovery':
      return <RecoveryPage />;
    case 'statements':
      return <StatementsPage role={role} />;
    case 'ledger':
      return <LedgerPage role={role} />;
  }
}

function App() {
  useLang();
  const session = useSession();
  const route = useRoute();
  return (
    <>
      <Header title={t('Duet console', 'Duet 运营控制台')}>
        {session !== undefined && (
          <>
            <span class="badge ok" data-testid="role">
              {roleWords(session.role)}
            </span>
            <button type="button" data-testid="signout" onClick={() => void signOut()}>
              {t('Sign out', '退出')}
            </button>
          </>
        )}
      </Header>
      {session === undefined ? (
        <SignIn />
      ) : (
        <div class="layout">
          <nav class="side" data-testid="nav">
            {PAGES.filter((p) => p.roles.includes(session.role)).map((p) => (
              <a key={p.id} href={`#/${p.id}`} class={route.page === p.id ? 'active' : ''} data-nav={p.id}>
                {p.name()}
              </a>
            ))}
          </nav>
          <main class="content">
            <Screen route={route} role={session.role} />
          </main>
        </div>
      )}
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
registerServiceWorker();
