/**
 * Pieces every app shares: the header with the language switch and the network state, money as
 * yuan, an error banner, and service-worker registration.
 */
import { fen, formatYuan } from '@duet/protocol';
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { type Lang, setLang, t, useLang } from './i18n.js';

/** Fen as yuan with two decimals and the yuan sign: 1234 → ¥12.34 (an amount out of bounds shows as "¥?"). */
export function yuan(amount: number): string {
  try {
    return `¥${formatYuan(fen(amount))}`;
  } catch {
    return '¥?';
  }
}

/** Tracks navigator.onLine and its events. */
export function useOnline(): boolean {
  const [online, set] = useState(navigator.onLine);
  useEffect(() => {
    const on = (): void => set(true);
    const off = (): void => set(false);
    addEventListener('online', on);
    addEventListener('offline', off);
    return () => {
      removeEventListener('online', on);
      removeEventListener('offline', off);
    };
  }, []);
  return online;
}

export function LangSwitch() {
  const l = useLang();
  const next: Lang = l === 'zh' ? 'en' : 'zh';
  return (
    <button type="button" class="lang" data-testid="lang-switch" onClick={() => setLang(next)} title={t('Language', '语言')}>
      {l === 'zh' ? 'English' : '中文'}
    </button>
  );
}

export function NetBadge({ online }: { online: boolean }) {
  useLang();
  return (
    <span class={online ? 'badge ok' : 'badge warn'} data-testid="net-state">
      {online ? t('Online', '在线') : t('Offline', '离线')}
    </span>
  );
}

export function Header({ title, children }: { title: string; children?: ComponentChildren }) {
  const online = useOnline();
  return (
    <header class="top">
      <strong class="brand">Duet</strong>
      <span class="title">{title}</span>
      <span class="spacer" />
      {children}
      <NetBadge online={online} />
      <LangSwitch />
    </header>
  );
}

export function ErrorBanner({ error, onClose }: { error: string | undefined; onClose?: () => void }) {
  if (error === undefined) return null;
  return (
    <div class="error" role="alert" data-testid="error">
      <span>{error}</span>
      {onClose !== undefined && (
        <button type="button" class="link" onClick={onClose}>
          ×
        </button>
      )}
    </div>
  );
}

/** Registers the app's service worker (its scope is the app's own path). */
export function registerServiceWorker(): void {
  if ('serviceWorker' in navigator && location.protocol !== 'file:') {
    navigator.serviceWorker.register('./sw.js').catch((e: unknown) => console.warn('service worker', e));
  }
}
