/**
 * The HTTP machinery: routes are data (method, path, who may call, schemas, handler), registered in
 * one loop that puts authentication in front of every handler, so no route can forget it; the same
 * table drives the OpenAPI description and the test that every route refuses the wrong caller.
 */
import type { TSchema } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { PlatformContext, Principal, StaffRole } from './context.js';
import { ApiError } from './errors.js';

export type Access =
  | { readonly kind: 'public' }
  | { readonly kind: 'staff'; readonly roles: readonly StaffRole[] }
  | { readonly kind: 'holder' }
  /** Anyone signed in: a staff member of any role or a holder (signing out). */
  | { readonly kind: 'session' }
  /** A staff member of these roles, or the holder named by the :id parameter. */
  | { readonly kind: 'staff_or_self'; readonly roles: readonly StaffRole[] }
  /** A terminal's signed request; `revokedMayCall`: a revoked terminal too (handing in its journal). */
  | { readonly kind: 'terminal'; readonly revokedMayCall?: boolean }
  /** Proved by a one-time activation code in the body (terminal activation). */
  | { readonly kind: 'activation' };

export interface Call {
  readonly ctx: PlatformContext;
  readonly principal: Principal | undefined;
  readonly body: unknown;
  readonly query: Record<string, unknown>;
  readonly params: Record<string, string>;
  readonly raw: Uint8Array;
  readonly address: string;
  readonly req: FastifyRequest;
  readonly reply: FastifyReply;
}

export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly url: string;
  readonly access: Access;
  readonly summary: string;
  readonly tags: readonly string[];
  readonly body?: TSchema;
  readonly query?: TSchema;
  readonly params?: TSchema;
  readonly response?: TSchema;
  /** For binary bodies (upload batches): the content type and the most bytes accepted. */
  readonly binary?: { readonly contentType: string; readonly maxBytes: number };
  handle(call: Call): Promise<unknown>;
}

export function staffOf(call: Call, roles?: readonly StaffRole[]): Extract<Principal, { kind: 'staff' }> {
  const p = call.principal;
  if (p?.kind !== 'staff' || (roles !== undefined && !roles.includes(p.role))) throw new ApiError('forbidden');
  return p;
}

export function holderOf(call: Call): number {
  const p = call.principal;
  if (p?.kind !== 'holder') throw new ApiError('forbidden');
  return p.id;
}

export function terminalOf(call: Call): number {
  return terminalPrincipal(call).id;
}

export function terminalPrincipal(call: Call): Extract<Principal, { kind: 'terminal' }> {
  const p = call.principal;
  if (p?.kind !== 'terminal') throw new ApiError('forbidden');
  return p;
}

/** Decides whether `principal` may call a route with this access rule (authentication happened before). */
export function allowed(access: Access, principal: Principal | undefined, params: Record<string, string>): boolean {
  switch (access.kind) {
    case 'public':
    case 'activation':
      return true;
    case 'staff':
      return principal?.kind === 'staff' && access.roles.includes(principal.role);
    case 'holder':
      return principal?.kind === 'holder';
    case 'session':
      return principal?.kind === 'staff' || principal?.kind === 'holder';
    case 'terminal':
      return principal?.kind === 'terminal';
    case 'staff_or_self':
      return (
        (principal?.kind === 'staff' && access.roles.includes(principal.role)) ||
        (principal?.kind === 'holder' && String(principal.id) === params.id)
      );
  }
}

export function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/** Decodes base64 from a request field, bounded, or refuses naming the field. */
export function fromB64(value: unknown, field: string, maxBytes: number): Uint8Array {
  if (typeof value !== 'string' || value.length > Math.ceil(maxBytes / 3) * 4 + 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw new ApiError('validation_failed', `${field} must be base64 of at most ${maxBytes} bytes`);
  }
  const out = new Uint8Array(Buffer.from(value, 'base64'));
  if (out.length > maxBytes) throw new ApiError('validation_failed', `${field} is longer than ${maxBytes} bytes`);
  return out;
}
