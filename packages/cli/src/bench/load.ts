/**
 * A lean open-loop HTTP/1.1 load generator for the server benchmarks, in the spirit of wrk2: a fixed
 * pool of keep-alive TCP connections, every request serialized to bytes before the clock starts, a
 * response read by its status line and Content-Length and nothing more. Node's own HTTP client costs
 * several times the server's work per request on this 2-core machine, and that cost was being
 * counted as server latency (the /healthz floor's p99 was ~30 ms with it).
 *
 * Open loop: request i is due at t0 + i/rate and its latency counts from then, so a server (or a
 * generator) that falls behind shows it as latency instead of quietly sending less.
 */
import { connect, type Socket } from 'node:net';
import { round3 } from './measure.js';

export interface LoadRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array;
}

export interface LoadResult {
  readonly latency: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Requests whose answer passed `ok`. */
  readonly ok: number;
  readonly achievedRps: number;
}

/** Serializes a request once; the run only writes bytes. */
export function serialize(host: string, r: LoadRequest): Buffer {
  const lines = [`${r.method} ${r.path} HTTP/1.1`, `host: ${host}`, 'connection: keep-alive'];
  for (const [k, v] of Object.entries(r.headers ?? {})) lines.push(`${k}: ${v}`);
  if (r.body !== undefined) lines.push(`content-length: ${r.body.length}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return r.body === undefined ? head : Buffer.concat([head, r.body]);
}

interface Conn {
  readonly socket: Socket;
  buf: Buffer;
  /** The request in flight on this connection (one at a time, no pipelining), or -1. */
  current: number;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * Sends `requests` (already serialized) at `rate` per second over `connections` keep-alive
 * connections to `url`, and checks each answer with `ok(status, body)`.
 */
export async function openLoopHttp(
  url: string,
  requests: readonly Buffer[],
  rate: number,
  connections: number,
  ok: (status: number, body: Buffer) => boolean,
): Promise<LoadResult> {
  const u = new URL(url);
  const count = requests.length;
  const samples = new Float64Array(count);
  const dueAt = new Float64Array(count);
  let good = 0;
  let done = 0;
  const idle: Conn[] = [];
  const waiting: number[] = [];
  let waitingHead = 0;
  let finish: () => void = () => {};
  let fail: (e: Error) => void = () => {};
  const finished = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });

  const dispatch = (c: Conn): void => {
    if (waitingHead < waiting.length) {
      const i = waiting[waitingHead++] as number;
      c.current = i;
      c.socket.write(requests[i] as Buffer);
    } else {
      c.current = -1;
      idle.push(c);
    }
  };

  const onData = (c: Conn, chunk: Buffer): void => {
    c.buf = c.buf.length === 0 ? chunk : Buffer.concat([c.buf, chunk]);
    for (;;) {
      const end = c.buf.indexOf(HEADER_END);
      if (end < 0) return;
      const head = c.buf.subarray(0, end).toString('latin1');
      const status = Number(head.slice(9, 12));
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const length = m?.[1] === undefined ? 0 : Number(m[1]);
      if (c.buf.length < end + 4 + length) return;
      const body = c.buf.subarray(end + 4, end + 4 + length);
      c.buf = c.buf.subarray(end + 4 + length);
      const i = c.current;
      if (i < 0) {
        fail(new Error('load: an answer arrived with no request in flight'));
        return;
      }
      samples[i] = performance.now() - (dueAt[i] as number);
      if (ok(status, body)) good++;
      done++;
      if (done === count) finish();
      dispatch(c);
    }
  };

  const conns = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<Conn>((resolve, reject) => {
          const socket = connect({ host: u.hostname, port: Number(u.port), noDelay: true });
          const c: Conn = { socket, buf: Buffer.alloc(0), current: -1 };
          socket.once('connect', () => resolve(c));
          socket.once('error', reject);
          socket.on('data', (d: Buffer) => onData(c, d));
          socket.on('close', () => {
            if (done < count) fail(new Error('load: the server closed a connection mid-run'));
          });
        }),
    ),
  );
  idle.push(...conns);

  const start = performance.now();
  let next = 0;
  const tick = (): void => {
    const now = performance.now();
    while (next < count && start + (next * 1000) / rate <= now) {
      const i = next++;
      dueAt[i] = start + (i * 1000) / rate;
      waiting.push(i);
      const c = idle.pop();
      if (c !== undefined) dispatch(c);
    }
    if (next < count) setTimeout(tick, 1);
  };
  tick();
  if (count === 0) finish();
  await finished;
  const elapsedS = (performance.now() - start) / 1000;
  for (const c of conns) c.socket.destroy();
  samples.sort();
  const at = (q: number): number => round3(samples[Math.min(count - 1, Math.floor(q * count))] ?? 0);
  return {
    latency: { p50: at(0.5), p99: at(0.99), max: round3(samples[count - 1] ?? 0) },
    ok: good,
    achievedRps: Math.round(count / elapsedS),
  };
}

/** One answer as the pool read it: the status and the body bytes. */
export interface PoolAnswer {
  readonly status: number;
  readonly body: Buffer;
}

/**
 * A closed-loop client over a fixed pool of keep-alive connections: `send` queues a serialized
 * request and resolves with its answer once a connection is free and the answer is in. Many
 * simulated clients (terminals) share the pool, as they would share a gateway's upstream connections.
 */
export class KeepAlivePool {
  private readonly idle: PoolConn[] = [];
  private readonly queue: { wire: Buffer; resolve: (a: PoolAnswer) => void; reject: (e: Error) => void }[] = [];
  private queueHead = 0;

  private constructor(private readonly conns: PoolConn[]) {
    for (const c of conns) c.pool = this;
    this.idle.push(...conns);
  }

  static async open(url: string, connections: number): Promise<KeepAlivePool> {
    const u = new URL(url);
    const conns = await Promise.all(
      Array.from(
        { length: connections },
        () =>
          new Promise<PoolConn>((resolve, reject) => {
            const socket = connect({ host: u.hostname, port: Number(u.port), noDelay: true });
            const c = new PoolConn(socket);
            socket.once('connect', () => resolve(c));
            socket.once('error', reject);
          }),
      ),
    );
    return new KeepAlivePool(conns);
  }

  send(wire: Buffer): Promise<PoolAnswer> {
    return new Promise((resolve, reject) => {
      this.queue.push({ wire, resolve, reject });
      const c = this.idle.pop();
      if (c !== undefined) this.next(c);
    });
  }

  /** @internal A connection is free: give it the next queued request, or park it. */
  next(c: PoolConn): void {
    const job = this.queue[this.queueHead];
    if (job === undefined) {
      this.idle.push(c);
      return;
    }
    this.queue[this.queueHead++] = undefined as never;
    if (this.queueHead > 4_096) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    c.start(job);
  }

  close(): void {
    for (const c of this.conns) c.socket.destroy();
  }
}

class PoolConn {
  pool: KeepAlivePool | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private job: { resolve: (a: PoolAnswer) => void; reject: (e: Error) => void } | undefined;
  private closed = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
      this.job?.reject(new Error('load: the server closed a connection'));
      this.job = undefined;
    });
  }

  start(job: { wire: Buffer; resolve: (a: PoolAnswer) => void; reject: (e: Error) => void }): void {
    if (this.closed) {
      job.reject(new Error('load: connection closed'));
      return;
    }
    this.job = job;
    this.socket.write(job.wire);
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const end = this.buf.indexOf(HEADER_END);
    if (end < 0) return;
    const head = this.buf.subarray(0, end).toString('latin1');
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const length = m?.[1] === undefined ? 0 : Number(m[1]);
    if (this.buf.length < end + 4 + length) return;
    const answer = { status: Number(head.slice(9, 12)), body: Buffer.from(this.buf.subarray(end + 4, end + 4 + length)) };
    this.buf = this.buf.subarray(end + 4 + length);
    const job = this.job;
    this.job = undefined;
    job?.resolve(answer);
    this.pool?.next(this);
  }
}
