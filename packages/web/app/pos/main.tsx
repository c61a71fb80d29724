/**
 * The Duet POS app (issue 6): activation, the amount keypad, the waiting-for-scan screen (keyboard
 * wedge, typed or pasted text, camera), the decision screen a cashier reads at a glance, and the
 * upload queue. The terminal core decides; see engine.ts.
 */
import '../shared/style.css';
import './pos.css';
import type { Fen } from '@duet/protocol';
import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { formatTime, t, useLang, words } from '../shared/i18n.js';
import { ErrorBanner, Header, registerServiceWorker, useOnline, yuan } from '../shared/ui.js';
import { parseAmount, pressKey } from './amount.js';
import { type Payment, PosEngine, type QueueState, type Shown } from './engine.js';
import { IdbJournal } from './idb-journal.js';
import { listenWedge, startCamera } from './scanner.js';
import { armSound, decisionSound } from './sound.js';

/** How long a decision stays up before the keypad comes back (a tap returns at once). */
const DECISION_SHOW_MS = 5_000;
const CAMERA_PREF = 'duet.pos.camera';

type Screen =
  | { kind: 'loading' }
  | { kind: 'blocked' }
  | { kind: 'failed'; error: string }
  | { kind: 'activate' }
  | { kind: 'keypad' }
  | { kind: 'waiting'; amount: number }
  | { kind: 'decided'; shown: Shown; n?: number };

function toScreen(p: Payment | undefined): Screen {
  if (p === undefined) return { kind: 'keypad' };
  return p.phase === 'waiting' ? { kind: 'waiting', amount: p.amount } : { kind: 'decided', shown: p.shown };
}

interface DuetPosWindow {
  __duetPosDecide?: (codeText: string, amountFen: number) => Promise<{ ms: number; accepted: boolean; reason: string }>;
  __duetIdbJournal?: (name: string) => IdbJournal;
}

/** Counts decisions shown, so each one gets its own screen and its own return timer. */
let decisions = 0;

function activationFromHash(): string | undefined {
  const m = /^#activate=([A-Za-z0-9-]{1,64})$/.exec(location.hash);
  return m?.[1];
}

function App() {
  useLang();
  const [engine, setEngine] = useState<PosEngine | undefined>();
  const [screen, setScreen] = useState<Screen>({ kind: 'loading' });
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  const show = useCallback((p: Payment | undefined) => setScreen(toScreen(p)), []);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      const e = await PosEngine.open(() => setScreen({ kind: 'blocked' }));
      if (cancelled) return;
      setEngine(e);
      const code = activationFromHash();
      if (code !== undefined) history.replaceState(null, '', location.pathname + location.search);
      const wasActive = e.activated;
      if (!e.activated && code !== undefined) {
        setScreen({ kind: 'activate' });
        setBusy(true);
        const r = await e.activate(code);
        setBusy(false);
        if (!r.ok) {
          setError(r.words);
          return;
        }
      }
      if (!e.activated) {
        setScreen({ kind: 'activate' });
        return;
      }
      if (code !== undefined && wasActive && e.terminalId !== undefined) {
        setError(
          t(
            `This POS is already activated as terminal #${e.terminalId}; the activation link was not used.`,
            `此收银台已激活为终端 #${e.terminalId}，未使用该激活链接。`,
          ),
        );
      }
      show(await e.recover());
    })().catch((err: unknown) => {
      setScreen({ kind: 'failed', error: err instanceof Error ? err.message : String(err) });
    });
    return () => {
      cancelled = true;
    };
  }, [show]);

  // The one path every scan takes: camera, wedge, typed field and window.__duetPosDecide.
  const decide = useCallback(
    async (text: string, amount: number): Promise<Shown> => {
      if (engine === undefined) throw new Error('POS not ready');
      const shown = await engine.decide(text, amount);
      decisionSound(shown.accepted);
      setScreen({ kind: 'decided', shown, n: ++decisions });
      return shown;
    },
    [engine],
  );

  useEffect(() => {
    const w = window as unknown as DuetPosWindow;
    w.__duetPosDecide = async (codeText, amountFen) => {
      const t0 = performance.now();
      const shown = await decide(codeText, amountFen);
      return { ms: performance.now() - t0, accepted: shown.accepted, reason: shown.reason };
    };
  }, [decide]);

  const back = useCallback(async () => {
    await engine?.endPayment();
    setScreen({ kind: 'keypad' });
  }, [engine]);

  let body: preact.JSX.Element;
  if (screen.kind === 'loading') body = <p class="muted pos-center">{t('Opening the journal…', '正在打开交易日志…')}</p>;
  else if (screen.kind === 'blocked')
    body = (
      <div class="card" data-testid="pos-other-tab">
        {t(
          'This POS is open in another tab or window. Close it there; this one takes over at once.',
          '此收银台已在另一个标签页或窗口中打开。请关闭那一个，本页会立即接管。',
        )}
      </div>
    );
  else if (screen.kind === 'failed')
    body = (
      <div class="error" role="alert" data-testid="pos-failed">
        {t('The POS could not open its storage: ', '收银台无法打开本地存储：')}
        {screen.error}
      </div>
    );
  else if (engine === undefined) body = <p />;
  else if (screen.kind === 'activate')
    body = (
      <Activate
        busy={busy}
        onActivate={async (code) => {
          setBusy(true);
          setError(undefined);
          const r = await engine.activate(code);
          setBusy(false);
          if (r.ok) setScreen({ kind: 'keypad' });
          else setError(r.words);
        }}
      />
    );
  else if (screen.kind === 'keypad')
    body = (
      <Keypad
        maxFen={engine.maxFen}
        onCharge={async (amount) => {
          show(await engine.startPayment(amount));
        }}
      />
    );
  else if (screen.kind === 'waiting') {
    const amount = screen.amount;
    body = <Waiting amount={amount} onScan={(text) => decide(text, amount)} onCancel={back} />;
  } else body = <Decision shown={screen.shown} onDone={back} />;

  return (
    <>
      <Header title={t('Duet POS', 'Duet 收银台')}>
        {engine?.terminalId !== undefined && (
          <span class="muted" data-testid="pos-terminal">
            {t('Terminal', '终端')} #{engine.terminalId}
          </span>
        )}
      </Header>
      <main class="pos">
        <ErrorBanner error={error} onClose={() => setError(undefined)} />
        {body}
      </main>
      {engine?.activated === true && <Queue engine={engine} />}
    </>
  );
}

function Activate({ busy, onActivate }: { busy: boolean; onActivate: (code: string) => Promise<void> }) {
  const [code, setCode] = useState('');
  return (
    <form
      class="card pos-activate"
      data-testid="pos-activate"
      onSubmit={(e) => {
        e.preventDefault();
        void onActivate(code);
      }}
    >
      <h2>{t('Activate this terminal', '激活此终端')}</h2>
      <p class="muted">
        {t(
          'Type the one-time activation code from the console, or open the activation link. A new key is made on this device; only its public half leaves it.',
          '请输入管理台给出的一次性激活码，或打开激活链接。本设备会生成新密钥，只有公钥会发送出去。',
        )}
      </p>
      <input
        data-testid="pos-activate-code"
        value={code}
        maxLength={40}
        autoComplete="off"
        placeholder="ABCDE-FGH23-JKLMN-PQRST"
        onInput={(e) => setCode((e.target as HTMLInputElement).value)}
      />
      <button type="submit" class="primary" disabled={busy} data-testid="pos-activate-submit">
        {busy ? t('Activating…', '正在激活…') : t('Activate', '激活')}
      </button>
    </form>
  );
}

const KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '.', '0', '00'];

function Keypad({ maxFen, onCharge }: { maxFen: number; onCharge: (amount: Fen) => Promise<void> }) {
  const [text, setText] = useState('');
  const [problem, setProblem] = useState<{ en: string; zh: string } | undefined>();
  const press = (key: string): void => {
    setProblem(undefined);
    setText((x) => pressKey(x, key));
  };
  const charge = (): void => {
    armSound();
    const r = parseAmount(text, maxFen);
    if (!r.ok) {
      setProblem(r);
      return;
    }
    void onCharge(r.fen);
  };
  return (
    <div class="pos-keypad" data-testid="pos-keypad">
      <div class="pos-amount" data-testid="pos-amount">
        ¥{text === '' ? '0' : text}
      </div>
      <div
        class="pos-problem"
        role="alert"
        data-testid="pos-amount-error"
        data-code={problem === undefined ? '' : (problem as { code?: string }).code}
      >
        {problem === undefined ? ' ' : words(problem)}
      </div>
      <div class="pos-keys">
        {KEYS.map((k) => (
          <button type="button" key={k} data-testid={`pos-key-${k === '.' ? 'dot' : k}`} onClick={() => press(k)}>
            {k}
          </button>
        ))}
        <button type="button" data-testid="pos-key-back" onClick={() => press('back')} title={t('Backspace', '退格')}>
          ⌫
        </button>
        <button type="button" data-testid="pos-key-clear" onClick={() => press('clear')}>
          {t('Clear', '清除')}
        </button>
        <button type="button" class="primary pos-charge" data-testid="pos-charge" onClick={charge}>
          {t('Charge', '收款')}
        </button>
      </div>
      <p class="muted">
        {t('Single payment limit', '单笔限额')} {yuan(maxFen)}
      </p>
    </div>
  );
}

function Waiting({ amount, onScan, onCancel }: { amount: number; onScan: (text: string) => Promise<unknown>; onCancel: () => void }) {
  const [typed, setTyped] = useState('');
  const [camera, setCamera] = useState<'off' | 'starting' | 'on'>('off');
  const [cameraError, setCameraError] = useState<string | undefined>();
  const video = useRef<HTMLVideoElement>(null);
  const stopCamera = useRef<(() => void) | undefined>(undefined);
  const deciding = useRef(false);

  const scan = useCallback(
    (text: string) => {
      if (deciding.current || text.trim() === '') return;
      deciding.current = true;
      stopCamera.current?.();
      void onScan(text).finally(() => {
        deciding.current = false;
      });
    },
    [onScan],
  );

  useEffect(() => listenWedge(scan), [scan]);

  const openCamera = useCallback(async () => {
    if (video.current === null) return;
    setCamera('starting');
    setCameraError(undefined);
    const r = await startCamera(video.current, scan);
    if (r.ok) {
      stopCamera.current = r.stop;
      setCamera('on');
      localStorage.setItem(CAMERA_PREF, '1');
    } else {
      setCamera('off');
      setCameraError(
        r.error === 'denied'
          ? t('Camera permission refused: use the scanner or type the code', '摄像头权限被拒绝：请用扫码枪或输入付款码')
          : t('No camera available: use the scanner or type the code', '没有可用的摄像头：请用扫码枪或输入付款码'),
      );
    }
  }, [scan]);

  useEffect(() => {
    if (localStorage.getItem(CAMERA_PREF) === '1') void openCamera();
    return () => stopCamera.current?.();
  }, [openCamera]);

  return (
    <div class="pos-waiting" data-testid="pos-waiting" data-amount={amount}>
      <div class="pos-amount big">{yuan(amount)}</div>
      <p class="pos-hint">{t('Scan the payer’s code', '请扫描付款码')}</p>
      <video ref={video} class={camera === 'on' ? 'pos-video' : 'pos-video off'} data-testid="pos-video" muted playsInline />
      <div class="pos-row">
        {camera === 'on' ? (
          <button
            type="button"
            data-testid="pos-camera-stop"
            onClick={() => {
              stopCamera.current?.();
              localStorage.removeItem(CAMERA_PREF);
              setCamera('off');
            }}
          >
            {t('Stop camera', '关闭摄像头')}
          </button>
        ) : (
          <button type="button" data-testid="pos-camera" disabled={camera === 'starting'} onClick={() => void openCamera()}>
            {t('Use camera', '使用摄像头')}
          </button>
        )}
        <button type="button" class="link" data-testid="pos-cancel" onClick={onCancel}>
          {t('Cancel', '取消')}
        </button>
      </div>
      {cameraError !== undefined && <p class="muted">{cameraError}</p>}
      <form
        class="pos-row"
        onSubmit={(e) => {
          e.preventDefault();
          const text = typed;
          setTyped('');
          scan(text);
        }}
      >
        <input
          data-testid="pos-code-input"
          value={typed}
          maxLength={4096}
          autoComplete="off"
          placeholder={t('Or paste the code text here', '或在此粘贴付款码文本')}
          onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
        />
        <button type="submit" data-testid="pos-code-submit">
          {t('Check', '核验')}
        </button>
      </form>
      <p class="muted">{t('A keyboard-wedge scanner works on this screen as it is.', '此界面可直接使用键盘式扫码枪。')}</p>
    </div>
  );
}

function Decision({ shown, onDone }: { shown: Shown; onDone: () => void }) {
  useEffect(() => {
    const timer = setTimeout(onDone, DECISION_SHOW_MS);
    return () => clearTimeout(timer);
  }, [onDone]);
  const w = shown.words;
  return (
    <button
      type="button"
      class={shown.accepted ? 'pos-decision ok' : 'pos-decision no'}
      data-testid="pos-decision"
      data-accepted={String(shown.accepted)}
      data-reason={shown.reason}
      data-path={shown.path}
      aria-live="assertive"
      onClick={onDone}
    >
      <span class="pos-mark">{shown.accepted ? '✓' : '✗'}</span>
      <span class="pos-big">{shown.accepted ? yuan(shown.amount) : t('Not paid', '未收款')}</span>
      {!shown.accepted && <span class="pos-small">{yuan(shown.amount)}</span>}
      <span class="pos-words" lang="zh-CN">
        {w.zh}
      </span>
      <span class="pos-words" lang="en">
        {w.en}
      </span>
      <span class="pos-small">
        {shown.path === 'online' ? t('decided online', '联机决定') : t('decided offline', '脱机决定')}
        {!shown.accepted && ` · ${shown.reason}`}
        {shown.sequence !== undefined && ` · #${shown.sequence}`}
        {shown.recovered === true && ` · ${t('shown again after a reload', '重新载入后再次显示')}`}
      </span>
      <span class="pos-small">{t('Tap to continue', '点击继续')}</span>
    </button>
  );
}

function Queue({ engine }: { engine: PosEngine }) {
  const online = useOnline();
  const [q, setQ] = useState<QueueState>(engine.queue());
  useEffect(() => {
    const update = (): void => setQ(engine.queue());
    const off = engine.subscribe(update);
    const timer = setInterval(update, 500);
    return () => {
      off();
      clearInterval(timer);
    };
  }, [engine]);
  const retryIn = q.nextRetryAt === undefined ? undefined : Math.max(0, Math.ceil((q.nextRetryAt - Date.now()) / 1000));
  return (
    <footer class="pos-queue" data-testid="pos-queue" data-waiting={q.waiting} data-acked={q.ackedThrough}>
      <span class={q.waiting === 0 ? 'badge ok' : 'badge warn'}>
        {q.waiting === 0 ? t('All records uploaded', '记录已全部上传') : t(`${q.waiting} waiting for upload`, `${q.waiting} 笔待上传`)}
      </span>
      {q.uploading && <span class="muted">{t('Uploading…', '正在上传…')}</span>}
      {!online && <span class="muted">{t('Offline: payments are kept and sent later', '离线：交易已保存，联网后上传')}</span>}
      {online && q.error !== undefined && (
        <span class="muted" data-testid="pos-queue-error">
          {words(q.error)}
          {retryIn !== undefined && t(` · retry in ${retryIn} s`, ` · ${retryIn} 秒后重试`)}
        </span>
      )}
      {online && q.syncError !== undefined && <span class="muted">{q.syncError}</span>}
      <span class="spacer" />
      <span class={q.lists.stale ? 'badge bad' : 'muted'} data-testid="pos-lists" data-stale={String(q.lists.stale)}>
        {q.lists.version === 0
          ? t('No deny list yet', '尚无黑名单')
          : t(`Lists v${q.lists.version} of ${formatTime(q.lists.issuedS)}`, `名单 v${q.lists.version}（${formatTime(q.lists.issuedS)}）`)}
        {q.lists.stale && t(': out of date, connect to sync', '：已过期，请联网同步')}
      </span>
      {q.lastSyncS > 0 && (
        <span class="muted" data-testid="pos-last-sync">
          {t('Last sync', '上次同步')} {formatTime(q.lastSyncS)}
        </span>
      )}
      <button type="button" data-testid="pos-sync" disabled={!online} onClick={() => void engine.syncNow()}>
        {t('Sync now', '立即同步')}
      </button>
    </footer>
  );
}

// The journal contract tests run against this store in Chromium (test/pos-journal.test.ts).
(window as unknown as DuetPosWindow).__duetIdbJournal = (name) => new IdbJournal(name);

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
registerServiceWorker();
