/**
 * A TCP proxy that can be switched off, for "the peer is unreachable" on demand: while blocked it
 * accepts and closes every connection at once (and cuts the open ones), otherwise it forwards to
 * the target. Unlike a fault answer (an HTTP 503), the client sees what an outage looks like on
 * the wire.
 *
 * @module
 */

/** A running proxy; dispose to stop it and cut every connection. */
export class TcpProxy implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #target: { hostname: string; port: number };
  readonly #open = new Set<Deno.Conn>();
  readonly #accepting: Promise<void>;
  #blocked: boolean;

  private constructor(
    listener: Deno.TcpListener,
    target: { hostname: string; port: number },
    blocked: boolean,
  ) {
    this.#listener = listener;
    this.#target = target;
    this.#blocked = blocked;
    this.#accepting = this.#accept();
  }

  /**
   * Listen on a free port of 127.0.0.1 and forward to `target`.
   *
   * @example
   * ```ts ignore
   * await using proxy = TcpProxy.start({ hostname: "127.0.0.1", port: 8443 }, { blocked: true });
   * proxy.blocked = false;
   * ```
   */
  static start(
    target: { hostname: string; port: number },
    options: { blocked?: boolean } = {},
  ): TcpProxy {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new TcpProxy(listener, target, options.blocked ?? false);
  }

  /** The port clients connect to. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** While true every connection is refused (accepted and closed); setting it cuts open ones. */
  get blocked(): boolean {
    return this.#blocked;
  }

  set blocked(value: boolean) {
    this.#blocked = value;
    if (value) { for (const c of [...this.#open]) this.#drop(c); }
  }

  #drop(conn: Deno.Conn): void {
    this.#open.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        if (this.#blocked) {
          this.#drop(conn);
          continue;
        }
        void this.#forward(conn);
      }
    } catch {
      // listener closed
    }
  }

  async #forward(conn: Deno.Conn): Promise<void> {
    this.#open.add(conn);
    let up: Deno.Conn;
    try {
      up = await Deno.connect(this.#target);
    } catch {
      this.#drop(conn);
      return;
    }
    this.#open.add(up);
    await Promise.allSettled([
      conn.readable.pipeTo(up.writable),
      up.readable.pipeTo(conn.writable),
    ]);
    this.#drop(conn);
    this.#drop(up);
  }

  /** Stop listening and cut every connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    for (const c of [...this.#open]) this.#drop(c);
    await this.#accepting;
  }
}
