/**
 * A TCP proxy a test can cut: the platform reaches its PostgreSQL through it, and `cut()` makes the
 * database unreachable (listening stops, every open connection is dropped) until `restore()`.
 * Shared by the fault suites (faults.test.ts, clearing-faults.test.ts).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;

  private constructor(
    private readonly target: { readonly host: string; readonly port: number },
    public port: number,
  ) {}

  static async start(host: string, port: number): Promise<TcpProxy> {
    const p = new TcpProxy({ host, port }, 0);
    await p.restore();
    return p;
  }

  /** The same PostgreSQL URL, reached through this proxy. */
  via(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  /** Listens again (on the same port after a cut). */
  async restore(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('proxy: no address');
    this.port = address.port;
    this.#server = server;
  }

  /** Stops listening and drops every connection: the database is unreachable. */
  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
