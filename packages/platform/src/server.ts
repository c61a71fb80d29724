/**
 * The platform's HTTP server (Fastify): JSON API with schema validation on every body and query,
 * an OpenAPI description at /openapi.json, health at /healthz, Prometheus metrics at /metrics and
 * structured (pino) logs. Errors leave as one JSON shape, { error: { code, en, zh, detail } }, with
 * the status from the one table in errors.ts.
 */
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { PlatformContext, Principal } from './context.js';
import { StorageUnavailableError } from './db/db.js';
import { ApiError } from './errors.js';
import { allowed, type Route } from './http.js';

/** JSON bodies are small: the largest is a credential request; 64 KiB leaves room and stops abuse. */
export const JSON_BODY_MAX_BYTES = 64 * 1024;

export interface ServerOptions {
  readonly logger?: boolean;
  /** A bearer token that may read /metrics without a staff session (for a Prometheus scraper). */
  readonly metricsToken?: string;
  /**
   * Adds routes of an outer layer before the server is ready (the web apps' static files, which
   * `duet serve` and `duet demo` mount; the platform itself knows nothing of them).
   */
  readonly extend?: (app: FastifyInstance) => void | Promise<void>;
}

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: Buffer;
    /** The caller, set by the access check before the body is validated. */
    principal?: Principal;
  }
}

/**
 * The process's own metrics (CPU, memory, GC, event-loop delay), collected once per process and
 * shown by every server in it. Per server they would leak: prom-client's GC observer and event-loop
 * monitor are never stopped, and they kept each closed server's registry (and so its database and
 * routes) alive, a few MB per server opened (the simulator opens one per seed).
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: 'duet_' });
  }
  return processRegistry;
}

export async function buildServer(ctx: PlatformContext, routes: readonly Route[], o: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger:
      o.logger === false
        ? false
        : { level: process.env.DUET_LOG_LEVEL ?? 'info', redact: ['req.headers.authorization', 'req.headers["x-duet-signature"]'] },
    bodyLimit: JSON_BODY_MAX_BYTES,
    // No type coercion: a JSON `true` or "100" must not become 1 or 100 fen. Query strings, which
    // are text by nature, have their integer parameters converted in `integerQuery` instead.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });

  // Keep the raw bytes of every body: terminals sign them, and binary uploads are read as bytes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req: FastifyRequest, body: Buffer, done) => {
    req.rawBody = body;
    if (body.length === 0) return done(null, undefined);
    try {
      done(null, JSON.parse(body.toString('utf8')) as unknown);
    } catch {
      done(new ApiError('bad_request', 'the body is not valid JSON'), undefined);
    }
  });
  app.addContentTypeParser(
    'application/octet-stream',
    { parseAs: 'buffer', bodyLimit: 2 * 1024 * 1024 },
    (req: FastifyRequest, body: Buffer, done) => {
      req.rawBody = body;
      done(null, body);
    },
  );

  const registry = new Registry();
  const requests = new Counter({
    name: 'duet_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'duet_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3, 1, 3],
    registers: [registry],
  });
  // What an operator watches at 12:40: the clearing backlog, open flags and alarms, the unsealed tail.
  // Read at scrape time from indexed or small tables, so a scrape stays cheap with a large ledger.
  new Gauge({
    name: 'duet_clearing_pending_records',
    help: 'Uploaded payment records clearing has not decided yet',
    registers: [registry],
    async collect() {
      const r = await ctx.db.one("SELECT COUNT(*) AS n FROM records WHERE cleared = 'pending'");
      this.set(Number(r?.n ?? 0));
    },
  });
  new Gauge({
    name: 'duet_clearing_open_flags',
    help: 'Clearing flags not yet resolved, by reason',
    labelNames: ['reason'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of await ctx.db.all('SELECT reason, COUNT(*) AS n FROM clearing_flags WHERE resolved_at IS NULL GROUP BY reason'))
        this.set({ reason: String(r.reason) }, Number(r.n));
    },
  });
  new Gauge({
    name: 'duet_intake_alarms',
    help: 'Intake alarms raised (bad signature, fork, chain break), by reason',
    labelNames: ['reason'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of await ctx.db.all('SELECT reason, COUNT(*) AS n FROM intake_flags GROUP BY reason'))
        this.set({ reason: String(r.reason) }, Number(r.n));
    },
  });
  new Gauge({
    name: 'duet_ledger_unsealed_entries',
    help: 'Ledger entries above the highest sealed one (not yet in the hash chain)',
    registers: [registry],
    async collect() {
      const r = await ctx.db.one(
        'SELECT COUNT(*) AS n FROM ledger_entries WHERE id > (SELECT COALESCE(MAX(entry_id), 0) FROM ledger_chain)',
      );
      this.set(Number(r?.n ?? 0));
    },
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((error: unknown, req, reply) => {
    const message = error instanceof Error ? error.message : String(error);
    let e: ApiError;
    if (error instanceof ApiError) e = error;
    else if (error instanceof StorageUnavailableError) e = new ApiError('unavailable', error.message, error.retryAfterS);
    else if ((error as { validation?: unknown }).validation !== undefined) e = new ApiError('validation_failed', message);
    else if ((error as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new ApiError('payload_too_large');
    else if ((error as { statusCode?: number }).statusCode === 415) e = new ApiError('bad_request', 'unsupported content type');
    else if (
      typeof (error as { statusCode?: number }).statusCode === 'number' &&
      ((error as { statusCode: number }).statusCode ?? 500) < 500
    ) {
      e = new ApiError('bad_request', message);
    } else {
      req.log.error({ err: error }, 'unhandled error');
      e = new ApiError('internal');
    }
    if (e.retryAfterS !== undefined) void reply.header('retry-after', String(e.retryAfterS));
    void reply.status(e.status).send({ error: e.toJSON() });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: new ApiError('not_found', `${req.method} ${req.url}`).toJSON() });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Duet platform API / Duet 平台接口',
        version: '1',
        description:
          'Dual-offline campus payments. Errors: { error: { code, en, zh, detail } }. Terminals sign requests (x-duet-terminal, x-duet-time, x-duet-signature; docs/protocol.md).',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'A staff or holder session token from /v1/staff/login or /v1/holder/login',
          },
          terminal: { type: 'apiKey', in: 'header', name: 'x-duet-signature', description: 'A request signed with the terminal key' },
        },
      },
    },
  });

  app.get('/healthz', { schema: { hide: true } }, async () => {
    await ctx.db.one('SELECT 1 AS ok');
    return { ok: true };
  });
  app.get('/openapi.json', { schema: { hide: true } }, async (req, reply) => {
    await requireStaff(ctx, req);
    return reply.send(app.swagger());
  });
  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    const token = bearerToken(req);
    if (o.metricsToken === undefined || token !== o.metricsToken) await requireStaff(ctx, req);
    const all = Registry.merge([processMetrics(), registry]);
    return reply.header('content-type', all.contentType).send(await all.metrics());
  });

  for (const route of routes) register(app, ctx, route);
  if (o.extend !== undefined) await o.extend(app);
  await app.ready();
  return app;
}

function bearerToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !h.startsWith('Bearer ')) return undefined;
  const t = h.slice(7).trim();
  return t.length > 0 && t.length <= 200 ? t : undefined;
}

async function requireStaff(ctx: PlatformContext, req: FastifyRequest): Promise<Principal> {
  const token = bearerToken(req);
  const p = token === undefined ? undefined : await ctx.auth.bearer(token);
  if (p === undefined) throw new ApiError('unauthenticated');
  if (p.kind !== 'staff') throw new ApiError('forbidden');
  return p;
}

function register(app: FastifyInstance, ctx: PlatformContext, route: Route): void {
  const security =
    route.access.kind === 'public' || route.access.kind === 'activation'
      ? []
      : route.access.kind === 'terminal'
        ? [{ terminal: [] }]
        : [{ bearer: [] }];
  app.route({
    method: route.method,
    url: route.url,
    ...(route.binary !== undefined ? { bodyLimit: route.binary.maxBytes } : {}),
    schema: {
      summary: route.summary,
      tags: [...route.tags],
      security,
      ...(route.body !== undefined ? { body: route.body } : {}),
      ...(route.query !== undefined ? { querystring: route.query } : {}),
      ...(route.params !== undefined ? { params: route.params } : {}),
      ...(route.response !== undefined ? { response: { 200: route.response } } : {}),
    },
    // Who is calling is settled before the body and query are validated: a caller the route refuses
    // gets 401/403 whatever it sent, and learns nothing of what the route accepts.
    preValidation: async (req) => {
      const params = (req.params ?? {}) as Record<string, string>;
      let principal: Principal | undefined;
      if (route.access.kind === 'terminal') {
        principal = await ctx.auth.terminal(req.headers, req.method, req.url, new Uint8Array(req.rawBody ?? Buffer.alloc(0)), {
          revokedMayCall: route.access.revokedMayCall === true,
        });
      } else if (route.access.kind !== 'public' && route.access.kind !== 'activation') {
        const token = bearerToken(req);
        principal = token === undefined ? undefined : await ctx.auth.bearer(token);
        if (principal === undefined) throw new ApiError('unauthenticated');
      }
      if (!allowed(route.access, principal, params)) throw new ApiError('forbidden');
      if (principal !== undefined) req.principal = principal;
      if (route.query !== undefined) integerQuery(req.query, route.query);
    },
    handler: async (req, reply) => {
      const params = (req.params ?? {}) as Record<string, string>;
      const raw = new Uint8Array(req.rawBody ?? Buffer.alloc(0));
      const principal = req.principal;
      const result = await route.handle({
        ctx,
        principal,
        body: req.body,
        query: (req.query ?? {}) as Record<string, unknown>,
        params,
        raw,
        address: req.ip,
        req,
        reply,
      });
      return reply.send(result ?? {});
    },
  });
}

/**
 * Converts the integer parameters of a query string from canonical decimal text to numbers, in
 * place, so the schema can check their bounds; anything else stays text and fails the schema.
 */
function integerQuery(query: unknown, schema: TSchema): void {
  if (typeof query !== 'object' || query === null) return;
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  const q = query as Record<string, unknown>;
  for (const [name, value] of Object.entries(q)) {
    if (properties[name]?.type === 'integer' && typeof value === 'string' && /^-?(0|[1-9][0-9]{0,15})$/.test(value))
      q[name] = Number(value);
  }
}
