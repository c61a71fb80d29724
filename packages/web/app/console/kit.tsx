/**
 * Small pieces every console screen uses: loading an answer with its error, a confirm dialog,
 * relative times, amounts typed in yuan, and the figures shown as tiles.
 */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { formatTime, t } from '../shared/i18n.js';
import { ErrorBanner } from '../shared/ui.js';
import { failureWords } from './api.js';

export { parseIntInput, parseYuanInput, TYPED_FEN_MAX } from './input.js';

export interface Loaded<T> {
  readonly data: T | undefined;
  readonly error: string | undefined;
  readonly loading: boolean;
  reload(): void;
}

/** Runs `load` now, on `reload()`, whenever `deps` change, and every `everyMs` when given. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[], everyMs?: number): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (e: unknown) => {
        if (!live) return;
        setError(failureWords(e));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  useEffect(() => {
    if (everyMs === undefined) return;
    const id = setInterval(reload, everyMs);
    return () => clearInterval(id);
  }, [everyMs, reload]);
  return { data, error, loading, reload };
}

/** Runs one action at a time, keeping its error; resolves true when it succeeded. */
export function useAction(): { busy: boolean; error: string | undefined; clear(): void; run(f: () => Promise<unknown>): Promise<boolean> } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const run = useCallback(async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await f();
      return true;
    } catch (e) {
      setError(failureWords(e));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, clear: () => setError(undefined), run };
}

/** The time as "12 s ago" / "12 秒前", or a dash when never. */
export function ago(epochS: number | null, nowMs: number = Date.now()): string {
  if (epochS === null) return t('never', '从未');
  const s = Math.max(0, Math.round(nowMs / 1000 - epochS));
  if (s < 60) return t(`${s} s ago`, `${s} 秒前`);
  if (s < 3600) return t(`${Math.floor(s / 60)} min ago`, `${Math.floor(s / 60)} 分钟前`);
  if (s < 86_400) return t(`${Math.floor(s / 3600)} h ago`, `${Math.floor(s / 3600)} 小时前`);
  return formatTime(epochS, true);
}

export function when(epochS: number | null): string {
  return epochS === null ? '—' : formatTime(epochS, true);
}

/** A fresh idempotency key for one money action (the form keeps it until the action succeeds). */
export function idempotencyKey(): string {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return `console-${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
}

export function Tile({
  label,
  value,
  sub,
  tone,
  testid,
}: {
  label: string;
  value: string;
  sub?: string;
  tone?: 'ok' | 'bad' | 'warn';
  testid?: string;
}) {
  return (
    <div class={`tile${tone === undefined ? '' : ` ${tone}`}`} data-testid={testid}>
      <div class="tile-label">{label}</div>
      <div class="tile-value">{value}</div>
      {sub !== undefined && <div class="tile-sub muted">{sub}</div>}
    </div>
  );
}

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card section">
      <div class="section-head">
        <h2>{title}</h2>
        <span class="spacer" />
        {actions}
      </div>
      {children}
    </section>
  );
}

export function Loading({ loaded }: { loaded: Loaded<unknown> }) {
  if (loaded.error !== undefined) return <ErrorBanner error={loaded.error} onClose={loaded.reload} />;
  if (loaded.data === undefined) return <p class="muted">{t('Loading…', '加载中…')}</p>;
  return null;
}

/**
 * A confirm dialog for destructive actions: the action runs only after the person confirms, and a
 * reason is asked for when `reason` is set (and required when the platform records one).
 */
export function Confirm({
  title,
  body,
  confirmLabel,
  reason,
  danger,
  error,
  onConfirm,
  onCancel,
}: {
  error?: string | undefined;
  title: string;
  body?: ComponentChildren;
  confirmLabel: string;
  reason?: { label: string; required: boolean };
  danger?: boolean;
  onConfirm: (reason: string) => Promise<boolean>;
  onCancel: () => void;
}) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLTextAreaElement>(null);
  useEffect(() => input.current?.focus(), []);
  // Escape cancels, as in any dialog.
  useEffect(() => {
    const key = (e: KeyboardEvent): void => {
      if (e.key === 'Escape') onCancel();
    };
    addEventListener('keydown', key);
    return () => removeEventListener('keydown', key);
  }, [onCancel]);
  const ok = reason === undefined || !reason.required || text.trim().length > 0;
  return (
    <div class="overlay" role="dialog" aria-modal="true" data-testid="confirm">
      <div class="card dialog">
        <h3>{title}</h3>
        {body}
        <ErrorBanner error={error} />
        {reason !== undefined && (
          <label class="field">
            <span>{reason.label}</span>
            <textarea
              ref={input}
              rows={2}
              maxLength={200}
              value={text}
              data-testid="confirm-reason"
              onInput={(e) => setText(e.currentTarget.value)}
            />
          </label>
        )}
        <div class="row end">
          <button type="button" onClick={onCancel} data-testid="confirm-cancel">
            {t('Cancel', '取消')}
          </button>
          <button
            type="button"
            class={danger === true ? 'danger' : 'primary'}
            disabled={!ok || busy}
            data-testid="confirm-ok"
            onClick={async () => {
              setBusy(true);
              const done = await onConfirm(text.trim());
              setBusy(false);
              if (done) onCancel();
            }}
          >
            {confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}

export function Dot({ on }: { on: boolean }) {
  return <span class={on ? 'dot on' : 'dot off'} title={on ? t('online', '在线') : t('offline', '离线')} />;
}
