/**
 * A control connection: typed requests and replies over a Unix stream
 * socket, framed and validated as lib/ipc/proto.ts defines. Either side may send
 * requests; each side answers the methods it has handlers for.
 */
import { FrameReader, FrameTooLarge, FrameWriter } from "./framing.ts";
import { isErrorCode, OuroborosError } from "../util/errors.ts";
import {
  isMethod,
  MAX_CTRL_FRAME,
  type Method,
  METHODS,
  type Req,
  type Res,
} from "./proto.ts";
import { jsonReplacer } from "./schema.ts";
import { Deadlines } from "./deadlines.ts";

export type Handler<M extends Method> = (
  body: Req<M>,
  conn: CtrlConn,
) => Promise<Res<M>> | Res<M>;

export type Handlers = { [M in Method]?: Handler<M> };

interface Pending {
  method: Method;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export interface CtrlOptions {
  /** Called for protocol problems the peer caused (logged by the owner). */
  onProblem?: (message: string) => void;
}

export class CtrlConn {
  #nextId = 1;
  #pending = new Map<number, Pending>();
  /** The requests' timeouts, on one timer (deadlines.ts). */
  #deadlines = new Deadlines<number>();
  #writer: FrameWriter;
  #closed = false;
  #done: Promise<void>;
  /** Free for the owner: what this connection is (an app, an IPCP, ...). */
  tag: unknown = undefined;

  constructor(
    private readonly conn: Deno.Conn,
    private readonly handlers: Handlers,
    private readonly opts: CtrlOptions = {},
  ) {
    this.#writer = new FrameWriter(conn, MAX_CTRL_FRAME * 4, false);
    this.#done = this.#readLoop();
  }

  /** Resolves when the connection has ended, for whatever reason. */
  get done(): Promise<void> {
    return this.#done;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  request<M extends Method>(
    method: M,
    body: Req<M>,
    timeoutMs?: number,
  ): Promise<Res<M>> {
    if (this.#closed) {
      return Promise.reject(
        new OuroborosError("closed", "the control connection is closed"),
      );
    }
    const id = this.#nextId++;
    return new Promise<Res<M>>((resolve, reject) => {
      const p: Pending = {
        method,
        resolve: resolve as (v: unknown) => void,
        reject,
      };
      if (timeoutMs !== undefined) {
        this.#deadlines.add(id, timeoutMs, () => {
          this.#pending.delete(id);
          reject(
            new OuroborosError(
              "timed_out",
              `no answer to ${method} within ${timeoutMs} ms`,
            ),
          );
        });
      }
      this.#pending.set(id, p);
      this.#send({ i: id, m: method, b: body });
    });
  }

  notify<M extends Method>(method: M, body: Req<M>): void {
    if (!this.#closed) this.#send({ m: method, b: body });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writer.close();
    try {
      this.conn.close();
    } catch {
      // already closed
    }
    this.#failPending();
  }

  /** One message out; bytes as hex and bigints as decimal (jsonReplacer). */
  #send(msg: unknown): void {
    const bytes = encoder.encode(JSON.stringify(msg, jsonReplacer));
    if (bytes.length > MAX_CTRL_FRAME) {
      throw new OuroborosError(
        "too_large",
        `control message of ${bytes.length} bytes`,
      );
    }
    this.#writer.push(bytes);
  }

  #failPending(): void {
    this.#deadlines.clear();
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      p.reject(new OuroborosError("closed", "the control connection closed"));
    }
  }

  #problem(message: string): void {
    this.opts.onProblem?.(message);
  }

  async #readLoop(): Promise<void> {
    // Messages are decoded (copied) before the next read: the chunk is reused.
    const reader = new FrameReader(this.conn, MAX_CTRL_FRAME, 16 * 1024, true);
    try {
      for (;;) {
        if (this.#closed) break;
        const frame = await reader.next();
        if (frame === null) break;
        this.#onFrame(frame.subarray(4));
      }
    } catch (e) {
      if (e instanceof FrameTooLarge) {
        this.#problem(`oversized control message (${e.length} bytes), closing`);
        this.#send({ i: 0, e: { code: "too_large", message: e.message } });
        await this.#writer.flushed();
      } else if (
        !this.#closed && !(e instanceof Deno.errors.ConnectionReset) &&
        !(e instanceof Deno.errors.BrokenPipe)
      ) {
        // A peer that resets the connection has simply gone away.
        this.#problem(
          `control connection: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    } finally {
      this.close();
    }
  }

  #onFrame(payload: Uint8Array): void {
    let msg: unknown;
    try {
      msg = JSON.parse(decoder.decode(payload));
    } catch {
      this.#problem("malformed control message (not JSON)");
      this.#send({
        i: 0,
        e: { code: "invalid", message: "malformed message: not JSON" },
      });
      return;
    }
    if (typeof msg !== "object" || msg === null || Array.isArray(msg)) {
      this.#send({
        i: 0,
        e: { code: "invalid", message: "malformed message: not an object" },
      });
      return;
    }
    const m = msg as Record<string, unknown>;
    const id = typeof m.i === "number" && Number.isSafeInteger(m.i) && m.i > 0
      ? m.i
      : 0;
    if ("r" in m || "e" in m) {
      this.#onReply(id, m);
      return;
    }
    const method = m.m;
    if (typeof method !== "string" || !isMethod(method)) {
      this.#problem(`unknown control method ${JSON.stringify(method)}`);
      if (id !== 0) {
        this.#send({
          i: id,
          e: { code: "invalid", message: `unknown method ${String(method)}` },
        });
      }
      return;
    }
    void this.#onRequest(id, method, m.b);
  }

  #onReply(id: number, m: Record<string, unknown>): void {
    const p = this.#pending.get(id);
    if (p === undefined) {
      if ("e" in m) {
        this.#problem(`peer reported: ${JSON.stringify(m.e).slice(0, 200)}`);
      }
      return;
    }
    this.#pending.delete(id);
    this.#deadlines.delete(id);
    if ("e" in m) {
      p.reject(toError(m.e));
      return;
    }
    const r = METHODS[p.method].res.parse(m.r, p.method);
    if (r.ok) p.resolve(r.value);
    else p.reject(new OuroborosError("invalid", `malformed reply: ${r.error}`));
  }

  async #onRequest(
    id: number,
    method: Method,
    rawBody: unknown,
  ): Promise<void> {
    const parsed = METHODS[method].req.parse(rawBody ?? {}, method);
    if (!parsed.ok) {
      this.#problem(`malformed ${method}: ${parsed.error}`);
      if (id !== 0) {
        this.#send({ i: id, e: { code: "invalid", message: parsed.error } });
      }
      return;
    }
    const handler = this.handlers[method] as Handler<typeof method> | undefined;
    if (handler === undefined) {
      if (id !== 0) {
        this.#send({
          i: id,
          e: { code: "invalid", message: `${method} is not served here` },
        });
      }
      return;
    }
    try {
      const res = await handler(parsed.value as never, this);
      if (id !== 0) this.#send({ i: id, r: res });
    } catch (e) {
      if (id === 0) return;
      if (e instanceof OuroborosError) {
        const body: Record<string, unknown> = {
          code: e.code,
          message: e.message,
        };
        if (e.errno !== undefined) body.errno = e.errno;
        this.#send({ i: id, e: body });
      } else {
        const message = e instanceof Error ? e.message : String(e);
        this.#problem(`handler for ${method} failed: ${message}`);
        this.#send({ i: id, e: { code: "failed", message } });
      }
    }
  }
}

function toError(e: unknown): OuroborosError {
  if (typeof e === "object" && e !== null) {
    const o = e as Record<string, unknown>;
    const code = typeof o.code === "string" && isErrorCode(o.code)
      ? o.code
      : "failed";
    const message = typeof o.message === "string"
      ? o.message.slice(0, 2000)
      : "error";
    const errno = typeof o.errno === "number" && Number.isInteger(o.errno)
      ? o.errno
      : undefined;
    return new OuroborosError(code, message, errno);
  }
  return new OuroborosError("failed", "malformed error reply");
}

/** Connects to a Unix socket and wraps it in a control connection. */
export async function connectCtrl(
  path: string,
  handlers: Handlers = {},
  opts: CtrlOptions = {},
): Promise<CtrlConn> {
  const conn = await Deno.connect({ transport: "unix", path });
  return new CtrlConn(conn, handlers, opts);
}
