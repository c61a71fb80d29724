/**
 * The simulated network between terminals and the platform: the platform is called in-process
 * (Fastify `inject`, no sockets), behind a seeded fault model. Per call, in this order:
 *
 * - outage or partition: the call never leaves (the internet is down for this terminal);
 * - loss: the request is lost before delivery, or delivered and its answer lost (half each);
 * - duplicate: the request is delivered twice (the second answer is dropped);
 * - reorder: a copy of the request is delivered again later on virtual time (a stale packet);
 * - delay: drawn per call; a delay over the caller's budget is a timeout (the answer is lost).
 *
 * Faults apply while `faultsOn`; healing turns them off and ends every outage and partition.
 */
import type { Random } from './random.js';

export interface Injectable {
  inject(o: {
    method: string;
    url: string;
    headers: Record<string, string>;
    payload?: Buffer;
  }): Promise<{ statusCode: number; headers: Record<string, unknown>; rawPayload: Buffer }>;
}

export interface NetworkFaults {
  readonly loss: number;
  readonly duplicate: number;
  readonly reorder: number;
  readonly delayMs: number;
}

export interface NetworkStats {
  calls: number;
  blocked: number;
  lostBefore: number;
  lostAfter: number;
  duplicated: number;
  reordered: number;
  timedOut: number;
}

export class NetworkDown extends Error {
  override readonly name = 'NetworkDown';
}

export class SimNetwork {
  faultsOn = true;
  /** Terminals that cannot reach the platform now (outage: all of them). */
  private readonly cut = new Set<number>();
  private down = false;
  readonly stats: NetworkStats = { calls: 0, blocked: 0, lostBefore: 0, lostAfter: 0, duplicated: 0, reordered: 0, timedOut: 0 };

  private app: Injectable | undefined;

  constructor(
    private readonly faults: NetworkFaults,
    private readonly random: Random,
    /** Schedules a late delivery on virtual time. */
    private readonly later: (ms: number, run: () => Promise<void>) => void,
  ) {}

  /** Connects the platform (once it is open). */
  attach(app: Injectable): void {
    this.app = app;
  }

  /** The internet is down (true) or back (false) for every terminal. */
  setOutage(down: boolean): void {
    this.down = down;
  }

  partition(terminal: number, cut: boolean): void {
    if (cut) this.cut.add(terminal);
    else this.cut.delete(terminal);
  }

  /** Heals everything: no outage, no partition, no faults. */
  heal(): void {
    this.faultsOn = false;
    this.down = false;
    this.cut.clear();
  }

  reachable(terminal: number): boolean {
    return !this.down && !this.cut.has(terminal);
  }

  /**
   * A `fetch` for one terminal (0: a perfect link, for the operator's own calls). `budgetMs` says
   * how long the caller waits for an answer on a path (an online authorization waits far less than
   * an upload).
   */
  fetchFor(terminal: number, budgetMs: (path: string) => number = () => Number.POSITIVE_INFINITY): typeof fetch {
    return async (input, init) => {
      const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
      const method = init?.method ?? 'GET';
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries((init?.headers as Record<string, string> | undefined) ?? {})) headers[k] = v;
      const body = init?.body instanceof Uint8Array ? Buffer.from(init.body) : undefined;
      const app = this.app;
      if (app === undefined) throw new NetworkDown('no platform attached');
      const send = () => app.inject({ method, url: url.pathname + url.search, headers, ...(body !== undefined ? { payload: body } : {}) });
      this.stats.calls++;
      if (terminal !== 0 && !this.reachable(terminal)) {
        this.stats.blocked++;
        throw new NetworkDown(`terminal ${terminal}: no network`);
      }
      const f = terminal !== 0 && this.faultsOn ? this.faults : undefined;
      if (f !== undefined && this.random.chance(f.loss)) {
        if (this.random.chance(0.5)) {
          this.stats.lostBefore++;
          throw new NetworkDown('request lost');
        }
        this.stats.lostAfter++;
        await send();
        throw new NetworkDown('answer lost');
      }
      if (f !== undefined && f.delayMs > 0 && this.random.int(f.delayMs + 1) > budgetMs(url.pathname)) {
        this.stats.timedOut++;
        await send();
        throw new NetworkDown('answer too late');
      }
      const res = await send();
      if (f !== undefined && this.random.chance(f.duplicate)) {
        this.stats.duplicated++;
        await send();
      }
      if (f !== undefined && this.random.chance(f.reorder)) {
        this.stats.reordered++;
        this.later(1_000 + this.random.int(60_000), async () => {
          await send();
        });
      }
      return new Response(res.statusCode === 204 ? null : new Uint8Array(res.rawPayload), {
        status: res.statusCode,
        headers: { 'content-type': String(res.headers['content-type'] ?? 'application/json') },
      });
    };
  }
}
