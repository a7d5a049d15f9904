/**
 * A UDP socket of the test that plays a peer node (a C node, a fuzzer): it
 * sends raw datagrams and waits, with a deadline, for the ones it expects.
 */
import { buildOapRequest } from "../lib/wire/oap.ts";
import { nameHash } from "../lib/wire/name_hash.ts";
import {
  DEFAULT_PORT,
  encodeFlowReq,
  MGMT_HDR_LEN,
  QOS_RAW,
} from "../lib/wire/udp_wire.ts";

const PORT = DEFAULT_PORT;

function u32(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off);
}

export function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
}

/** A fresh, correct FLOW_REQ for `name` with QoS raw. */
export function freshReq(sEid: number, name = "oping-server"): Uint8Array {
  return encodeFlowReq({
    sEid,
    qos: QOS_RAW,
    hash: nameHash(name),
    oap: buildOapRequest(),
  });
}

export interface Received {
  data: Uint8Array;
  from: Deno.NetAddr;
}

/**
 * A UDP socket of the test that plays a C node. One loop receives into a
 * queue; `receive` takes the first datagram that matches, within a deadline
 * (datagrams that do not match, such as keepalives, stay queued).
 */
export class PeerSocket {
  readonly sock: Deno.DatagramConn;
  readonly queue: Received[] = [];
  #wake: (() => void)[] = [];
  readonly #loop: Promise<void>;

  constructor(readonly hostname: string, readonly port: number = PORT) {
    this.sock = Deno.listenDatagram({ transport: "udp", hostname, port });
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    const buf = new Uint8Array(65536);
    for (;;) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await this.sock.receive(buf);
      } catch {
        return; // closed
      }
      this.queue.push({ data: got[0].slice(), from: got[1] as Deno.NetAddr });
      const w = this.#wake;
      this.#wake = [];
      for (const f of w) f();
    }
  }

  async send(data: Uint8Array, hostname: string, port = PORT): Promise<void> {
    await this.sock.send(data, { transport: "udp", hostname, port });
  }

  /** The first queued or arriving datagram that `match` accepts. */
  async receive(
    what: string,
    match: (r: Received) => boolean,
    timeoutMs = 5000,
  ): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.queue.findIndex(match);
      if (i >= 0) return this.queue.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.hostname}:${this.port}: no ${what} within ${timeoutMs} ms; queued: ${
            this.queue.map((r) =>
              `${r.from.hostname}:${r.from.port} ${r.data.length} B [${
                hex(r.data.subarray(0, 16))
              }...]`
            ).join("; ") || "nothing"
          }`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, left);
        this.#wake.push(resolve);
      });
      clearTimeout(timer);
    }
  }

  /** Closes the socket and waits for the receive loop to end. */
  async close(): Promise<void> {
    try {
      this.sock.close();
    } catch { /* closed */ }
    await this.#loop;
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }
}

export function isMgmt(code: number, sEid?: number): (r: Received) => boolean {
  return (r) =>
    r.data.length >= MGMT_HDR_LEN && u32(r.data, 0) === 0 &&
    r.data[44] === code && (sEid === undefined || u32(r.data, 4) === sEid);
}

export function isData(eid: number): (r: Received) => boolean {
  return (r) => r.data.length > 4 && u32(r.data, 0) === eid;
}
