/**
 * Authorization on every route, table-driven: the routes come from the same arrays the server is
 * built from (platformRoutes), so a route added tomorrow is covered without touching this
 * file. For every route and every kind of caller (nobody, a holder, another holder, each staff
 * role, a terminal) the server must refuse every caller the route's `access` rule does not allow,
 * 401 when the caller did not authenticate the way the route needs and 403 when it did but may not,
 * and must not refuse an allowed caller with 401/403 (a 400 for the empty body sent is fine).
 *
 * The empty body `{}` matters: the caller is settled before the body is validated, so a wrong
 * caller learns nothing about what a route accepts. Expectations are written out here from the
 * rule's meaning, not by calling http.ts `allowed`, so a wrong `allowed` fails this test.
 * Access rules do not depend on storage, but it runs on both databases anyway: it is cheap.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StaffRole } from '../src/context.js';
import type { Access, Route } from '../src/http.js';
import { platformRoutes } from '../src/platform.js';
import { ADMIN, type Caller, errorOf, expectError, type HolderAccount, HttpPlatform, ok, type Session } from './http-harness.js';
import { databases } from './pg-harness.js';

const STAFF_ROLES: readonly StaffRole[] = ['operator_admin', 'school_finance', 'merchant'];
type CallerKind = 'nobody' | 'holder' | 'other_holder' | StaffRole | 'terminal';
const CALLERS: readonly CallerKind[] = ['nobody', 'holder', 'other_holder', ...STAFF_ROLES, 'terminal'];

type Expected = 'allowed' | 401 | 403;

function isStaffRole(c: CallerKind): c is StaffRole {
  return (STAFF_ROLES as readonly string[]).includes(c);
}

/**
 * What a route's access rule means for a caller. `holder` is the holder named by the route's :id
 * (the "self" of staff_or_self); `other_holder` is someone else.
 */
function expected(access: Access, caller: CallerKind): Expected {
  switch (access.kind) {
    case 'public':
    case 'activation':
      return 'allowed';
    case 'terminal':
      return caller === 'terminal' ? 'allowed' : 401;
    case 'session':
    case 'holder':
    case 'staff':
    case 'staff_or_self': {
      // Bearer routes: no session at all is 401, whatever else the request carries.
      if (caller === 'nobody' || caller === 'terminal') return 401;
      const holder = caller === 'holder' || caller === 'other_holder';
      if (access.kind === 'session') return 'allowed';
      if (access.kind === 'holder') return holder ? 'allowed' : 403;
      if (access.kind === 'staff') return isStaffRole(caller) && access.roles.includes(caller) ? 'allowed' : 403;
      return caller === 'holder' || (isStaffRole(caller) && access.roles.includes(caller)) ? 'allowed' : 403;
    }
  }
}

for (const d of databases) {
  describe.skipIf(!d.available)(`authorization on every route (${d.name})`, () => {
    let h: HttpPlatform;
    let routes: readonly Route[];
    const sessions = new Map<CallerKind, Caller>();
    /** How to sign a bearer caller in again, when a route (logout) ended its session. */
    const relogin = new Map<CallerKind, () => Promise<Session>>();
    let self: HolderAccount;

    beforeAll(async () => {
      h = await HttpPlatform.on(d);
      routes = platformRoutes(h.platform.keys);
      self = await h.createHolder();
      const other = await h.createHolder();
      relogin.set('holder', () => h.loginHolder(self.id, self.password));
      relogin.set('other_holder', () => h.loginHolder(other.id, other.password));
      relogin.set('operator_admin', () => h.login(ADMIN.username, ADMIN.password));
      await h.staff('school_finance', 'finance1');
      relogin.set('school_finance', () => h.login('finance1', 'finance1-password-1'));
      await h.staff('merchant', 'merchant1');
      relogin.set('merchant', () => h.login('merchant1', 'merchant1-password-1'));
      for (const [kind, login] of relogin) sessions.set(kind, await login());
      sessions.set('terminal', await h.newTerminal());
    });
    afterAll(async () => {
      await h?.close();
    });

    async function callAs(kind: CallerKind): Promise<Caller | undefined> {
      const c = sessions.get(kind);
      if (c === undefined || c.kind === 'terminal') return c;
      if (await h.sessionValid(c)) return c;
      const login = relogin.get(kind);
      if (login === undefined) throw new Error(`no way to sign ${kind} in`);
      const fresh = await login();
      sessions.set(kind, fresh);
      return fresh;
    }

    it('refuses every caller a route does not allow (401 unauthenticated, 403 forbidden) and lets every allowed caller through', async () => {
      const problems: string[] = [];
      let checked = 0;
      for (const route of routes) {
        const path = route.url.replace(':id', String(self.id));
        for (const kind of CALLERS) {
          const want = expected(route.access, kind);
          const as = kind === 'nobody' ? undefined : await callAs(kind);
          const r = await h.request(route.method, path, {
            ...(as !== undefined ? { as } : {}),
            ...(route.method !== 'GET' ? { json: {} } : {}),
          });
          const got = `${r.status} ${errorOf(r)?.code ?? ''}`.trim();
          const where = `${route.method} ${route.url} (${route.access.kind}) as ${kind}`;
          checked++;
          if (r.status >= 500) problems.push(`${where}: ${got}, a server error`);
          else if (want === 401 && got !== '401 unauthenticated') problems.push(`${where}: want 401 unauthenticated, got ${got}`);
          else if (want === 403 && got !== '403 forbidden') problems.push(`${where}: want 403 forbidden, got ${got}`);
          else if (want === 'allowed' && (r.status === 401 || got === '403 forbidden')) problems.push(`${where}: allowed, got ${got}`);
        }
      }
      expect(problems).toEqual([]);
      expect(checked).toBe(routes.length * CALLERS.length);
    });

    it('has exactly four public routes: the trust list, the two sign-ins, and terminal activation (which its one-time code authorises)', () => {
      const open = routes.filter((r) => r.access.kind === 'public' || r.access.kind === 'activation').map((r) => `${r.method} ${r.url}`);
      expect(open.sort()).toEqual(['GET /v1/trust-list', 'POST /v1/holder/login', 'POST /v1/staff/login', 'POST /v1/terminal/activate']);
      expect(routes.find((r) => r.url === '/v1/terminal/activate')?.access.kind).toBe('activation');
    });

    it('serves health to anyone, and the OpenAPI description and metrics to staff only', async () => {
      expect(ok(await h.get('/healthz'))).toEqual({ ok: true });
      for (const path of ['/openapi.json', '/metrics']) {
        expectError(await h.get(path), 401, 'unauthenticated');
        expectError(await h.get(path, await callAs('holder')), 403, 'forbidden');
        expect((await h.get(path, await callAs('merchant'))).status).toBe(200);
      }
      const metrics = (await h.get('/metrics', await callAs('operator_admin'))).text;
      for (const name of [
        'duet_clearing_pending_records',
        'duet_clearing_open_flags',
        'duet_intake_alarms',
        'duet_ledger_unsealed_entries',
        'duet_http_requests_total',
        // The process's own, collected once per process and shown by every server in it.
        'duet_process_cpu_seconds_total',
        'duet_nodejs_gc_duration_seconds',
        'duet_nodejs_eventloop_lag_seconds',
      ])
        expect(metrics).toContain(`# TYPE ${name} `);
    });

    it('covers every route the server documents: the OpenAPI paths are exactly the table', async () => {
      const doc = ok<{ paths: Record<string, Record<string, unknown>> }>(await h.get('/openapi.json', await callAs('operator_admin')));
      const served = Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
      );
      const table = routes.map((r) => `${r.method} ${r.url}`);
      expect(served.sort()).toEqual(table.sort());
      expect(new Set(table).size).toBe(table.length);
    });
  });
}
