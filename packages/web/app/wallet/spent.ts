/**
 * What the holder spent offline under the current credential, as far as the platform knew at the
 * last history sync (terminals may still hold payments not uploaded yet, so "left" is an upper bound).
 * Kept in localStorage so the pay screen shows it with no network.
 */
const KEY = 'duet.wallet.offlineSpent';

export function offlineSpent(serial: number): number | undefined {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? 'null') as { serial?: unknown; fen?: unknown } | null;
    if (v === null || v.serial !== serial || typeof v.fen !== 'number' || !Number.isSafeInteger(v.fen) || v.fen < 0) return undefined;
    return v.fen;
  } catch {
    return undefined;
  }
}

export function setOfflineSpent(serial: number, fen: number): void {
  try {
    localStorage.setItem(KEY, JSON.stringify({ serial, fen }));
  } catch {
    // not kept: the screen says the figure is not synced
  }
}

export function forgetOfflineSpent(): void {
  localStorage.removeItem(KEY);
}
