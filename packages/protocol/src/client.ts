/**
 * The platform as the headless wallet and terminal reach it: JSON over HTTP, holder sessions by
 * bearer token, terminal requests signed with the terminal key (docs/protocol.md, request signing).
 * Every answer is checked for shape; an error answer becomes a PlatformCallError with its code and
 * words in both languages.
 */
import { signRequest } from './request-auth.js';
import type { CryptoProvider, Signer } from './suites.js';

export class PlatformCallError extends Error {
  override readonly name = 'PlatformCallError';
  constructor(
    readonly code: string,
    readonly en: string,
    readonly zh: string,
    readonly status: number,
  ) {
    super(`${code}: ${en}`);
  }

  toJSON(): { code: string; en: string; zh: string; status: number } {
    return { code: this.code, en: this.en, zh: this.zh, status: this.status };
  }
}

/** The longest any platform call may take before the caller gives up (uploads are the largest). */
export const PLATFORM_CALL_TIMEOUT_MS = 15_000;

export function b64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** The largest byte string a platform answer carries (a full deny list of a million entries is ~7 MB). */
export const ANSWER_BYTES_MAX = 16 * 1024 * 1024;

export function unb64(value: unknown, field: string): Uint8Array {
  if (typeof value !== 'string' || value.length > (ANSWER_BYTES_MAX / 3) * 4 + 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw new PlatformCallError('bad_answer', `the platform's ${field} is not base64`, `平台返回的 ${field} 不是 base64`, 0);
  }
  const s = atob(value);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function field<T>(o: unknown, name: string, check: (v: unknown) => v is T): T {
  const v = typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[name] : undefined;
  if (!check(v)) throw new PlatformCallError('bad_answer', `the platform's answer lacks ${name}`, `平台应答缺少 ${name}`, 0);
  return v;
}

export const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
export const isStr = (v: unknown): v is string => typeof v === 'string';

export class PlatformClient {
  constructor(
    readonly baseUrl: string,
    private readonly crypto: CryptoProvider,
    private readonly nowS: () => number = () => Math.floor(Date.now() / 1000),
    private readonly fetcher: typeof fetch = (input, init) => fetch(input, init),
  ) {}

  async call(
    method: string,
    path: string,
    o: { json?: unknown; bytes?: Uint8Array; token?: string; terminal?: { id: number; signer: Signer }; signal?: AbortSignal } = {},
  ): Promise<unknown> {
    const body = o.bytes ?? (o.json === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(o.json)));
    const headers: Record<string, string> = {};
    if (o.bytes !== undefined) headers['content-type'] = 'application/octet-stream';
    else if (o.json !== undefined) headers['content-type'] = 'application/json';
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
    if (o.terminal !== undefined) {
      Object.assign(headers, await signRequest(o.terminal.signer, o.terminal.id, method, path, body, this.nowS(), this.crypto.sha256));
    }
    const signal = o.signal ?? AbortSignal.timeout(PLATFORM_CALL_TIMEOUT_MS);
    let res: Response;
    try {
      res = await this.fetcher(new URL(path, this.baseUrl), {
        method,
        headers,
        signal,
        ...(body.length > 0 ? { body: new Uint8Array(body) } : {}),
      });
    } catch (e) {
      throw new PlatformCallError(
        'unreachable',
        `The platform at ${this.baseUrl} did not answer: ${String(e)}`,
        `平台 ${this.baseUrl} 无应答：${String(e)}`,
        0,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch {
      throw new PlatformCallError(
        'bad_answer',
        `The platform answered ${res.status} with something other than JSON`,
        `平台返回了非 JSON 内容（${res.status}）`,
        res.status,
      );
    }
    if (!res.ok) {
      const e = (typeof parsed === 'object' && parsed !== null ? (parsed as { error?: Record<string, unknown> }).error : undefined) ?? {};
      throw new PlatformCallError(
        String(e.code ?? 'http_error'),
        String(e.en ?? `HTTP ${res.status}`),
        String(e.zh ?? `HTTP ${res.status}`),
        res.status,
      );
    }
    return parsed;
  }
}
