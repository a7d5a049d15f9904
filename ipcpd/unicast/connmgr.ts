/**
 * The connection manager of the unicast IPCP (spec/unicast.md 1.2, 1.3,
 * 2.2): the member's N-1 flows, which it allocates and accepts through
 * its irmd like any program, and the CEP exchange that opens each one and
 * says which component it belongs to (Enrollment, Management or Data
 * Transfer) and, for the last two, the neighbour's address.
 *
 * The flows' connections belong to the data path (N1Add hands it the
 * descriptor); what is read on a flow comes back here as SDUs (`n1`), and
 * what the control thread writes goes through the data path too (`write`).
 * A dt flow, once up, is switched to DT mode: the data path forwards and
 * delivers its packets itself and hands back only those for this member's
 * components.
 *
 * - Allocating (`connect`): a flow to `dst` in a lower layer, our CEP for
 *   the component first, the peer's answer within CEP_WAIT_MS; the answer
 *   must agree (protocol, version, syntax), else the flow is given up.
 * - Accepting (`accepted`): the first SDU must be a CEP within
 *   CEP_WAIT_MS; an unknown component is answered with an all-empty CEP and
 *   the flow given up (as C does); a known one is answered with our CEP for
 *   it, and the flow goes to its component.
 *
 * The handlers see connections only once they are up: `up`, then `sdu`
 * for each SDU of a mgmt flow or component packet of a dt flow, then
 * `down` once (the peer or the lower layer ended it, or we did). An
 * enrollment flow is not "up" for them: it is handed to `enroll` (served)
 * or to the caller of connect (joining), who read and write it as an
 * SduFlow and give it up when the exchange is over.
 */
import type { FlowGrant, QosSpec } from "../../lib/ipc/proto.ts";
import {
  type Cep,
  CEP_UNKNOWN,
  cepAgrees,
  type CepComponent,
  cepComponent,
  cepFor,
  decodeCep,
  encodeCep,
} from "./cep.ts";
import type { SduFlow } from "./enroll.ts";

/**
 * How long either side waits for the other's CEP. C waits 1 s; nothing is
 * lost by more patience, and a loaded machine needs it.
 */
export const CEP_WAIT_MS = 5000;
/** SDUs kept for a flow nobody reads yet (CEP, enrollment): more are dropped. */
const INBOX_LIMIT = 64;
/**
 * Accepted flows waiting for their CEP, at most, and enrollments served at
 * once: a flood of N-1 flows (a broken or hostile peer) is given up beyond
 * these, each flow as it comes, so that it holds no descriptors, timers or
 * buffers for long.
 */
export const MAX_CEP_WAITING = 32;
export const MAX_ENROLLMENTS = 8;

export interface N1Ports {
  /** Asks the irmd for a flow to `dst`, a name in a lower layer. */
  allocate(dst: string, qos: QosSpec): Promise<FlowGrant>;
  /**
   * Connects to the grant's data socket and writes its attach frame;
   * returns the descriptor. Throws an Error when it cannot.
   */
  open(grant: FlowGrant): number;
  /** The data path takes the connection as N-1 flow `id`. */
  add(id: number, fd: number): void;
  /** ... which carries DT packets of cube `qc` from now on. */
  dt(id: number, qc: number): void;
  write(id: number, sdu: Uint8Array): void;
  /** ... closes it. */
  remove(id: number): void;
  /** A timer; returns its cancel. */
  timer(ms: number, f: () => void): () => void;
}

export interface ConnHandlers {
  /** Our address, for the CEPs of Management and Data Transfer. */
  addr(): bigint | undefined;
  /** Why a neighbour's address cannot be one (ours, too wide), or undefined. */
  badAddr(a: bigint): string | undefined;
  /** The QoS cube of a flow's QoS (a dt flow's forwarding table). */
  cube(q: QosSpec): number;
  up(f: N1Flow): void;
  sdu(f: N1Flow, sdu: Uint8Array): void;
  down(f: N1Flow, why: string): void;
  /** An accepted enrollment flow: serve it (the flow is given up after). */
  enroll(f: N1Flow): Promise<void>;
  log(level: "debug" | "info" | "warn", text: string): void;
}

type State = "cep" | "up" | "down";

/** One N-1 flow. */
export class N1Flow implements SduFlow {
  state: State = "cep";
  comp: CepComponent | undefined;
  /** the neighbour's address (Management, Data Transfer), once known */
  nb = 0n;
  #inbox: Uint8Array[] = [];
  #waiter:
    | {
      resolve: (b: Uint8Array) => void;
      reject: (e: Error) => void;
      cancel: () => void;
    }
    | undefined;
  #why = "";

  constructor(
    readonly id: number,
    /** the name it was allocated to; undefined for an accepted flow */
    readonly dst: string | undefined,
    readonly qc: number,
    readonly qos: QosSpec,
    readonly flowId: number,
    readonly mgr: ConnMgr,
  ) {}

  get outgoing(): boolean {
    return this.dst !== undefined;
  }

  send(sdu: Uint8Array): void {
    if (this.state === "down") return;
    this.mgr.ports.write(this.id, sdu);
  }

  recv(ms: number): Promise<Uint8Array> {
    const next = this.#inbox.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.state === "down") {
      return Promise.reject(new Error(this.#why));
    }
    if (this.#waiter !== undefined) {
      return Promise.reject(new Error("already reading"));
    }
    return new Promise((resolve, reject) => {
      const cancel = this.mgr.ports.timer(ms, () => {
        this.#waiter = undefined;
        reject(new Error(`nothing within ${ms} ms`));
      });
      this.#waiter = { resolve, reject, cancel };
    });
  }

  /** An SDU for a reader (CEP, enrollment). */
  push(sdu: Uint8Array): boolean {
    const w = this.#waiter;
    if (w !== undefined) {
      this.#waiter = undefined;
      w.cancel();
      w.resolve(sdu);
      return true;
    }
    if (this.#inbox.length >= INBOX_LIMIT) return false;
    this.#inbox.push(sdu);
    return true;
  }

  /** The SDUs that arrived before anyone read them, in order. */
  takeInbox(): Uint8Array[] {
    const q = this.#inbox;
    this.#inbox = [];
    return q;
  }

  /** The flow ended: a reader waiting gets `why`. */
  ended(why: string): void {
    this.state = "down";
    this.#why = why;
    this.#inbox = [];
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.cancel();
    w?.reject(new Error(why));
  }

  /** "dt connection 7 to uni-a (0x...)" and the like, for log lines. */
  describe(): string {
    const who = this.dst ?? "an accepted flow";
    const comp = this.comp ?? "N-1";
    const nb = this.nb === 0n ? "" : ` (address ${this.nb})`;
    return `${comp} flow ${this.id} with ${who}${nb}`;
  }
}

/** What the counters of the connection manager count. */
export interface ConnStats {
  /** flows given up during the CEP exchange */
  cepFailed: number;
  /** CEPs naming a component we do not have */
  cepUnknown: number;
  /** SDUs dropped: a full inbox, or a flow that is not up */
  dropped: number;
  /** accepted flows given up at once: too many waiting or enrolling */
  refused: number;
}

export class ConnMgr {
  readonly #flows = new Map<number, N1Flow>();
  #nextId = 1;
  #stopped = false;
  readonly stats: ConnStats = {
    cepFailed: 0,
    cepUnknown: 0,
    dropped: 0,
    refused: 0,
  };
  #cepWaiting = 0;
  #enrollments = 0;

  constructor(readonly ports: N1Ports, readonly h: ConnHandlers) {}

  /** The flows that are up, of a component (every one without). */
  flows(comp?: CepComponent): N1Flow[] {
    return [...this.#flows.values()].filter((f) =>
      f.state === "up" && (comp === undefined || f.comp === comp)
    );
  }

  get(id: number): N1Flow | undefined {
    return this.#flows.get(id);
  }

  #newId(): number {
    for (;;) {
      const id = this.#nextId;
      this.#nextId = this.#nextId >= 0xffff_fffe ? 1 : this.#nextId + 1;
      if (!this.#flows.has(id)) return id;
    }
  }

  /** Hands a granted flow's connection to the data path. */
  #open(grant: FlowGrant, dst: string | undefined): N1Flow {
    const fd = this.ports.open(grant);
    const f = new N1Flow(
      this.#newId(),
      dst,
      this.h.cube(grant.qos),
      grant.qos,
      grant.flowId,
      this,
    );
    this.#flows.set(f.id, f);
    this.ports.add(f.id, fd);
    return f;
  }

  /**
   * Allocates an N-1 flow to `dst` for `comp` and runs the CEP exchange.
   * Management and Data Transfer flows are up (their handlers told) when
   * this resolves; an enrollment flow is the caller's to use and give up.
   * Throws an Error that says what failed.
   */
  async connect(
    dst: string,
    comp: CepComponent,
    qos: QosSpec,
  ): Promise<N1Flow> {
    if (this.#stopped) throw new Error("the IPCP is stopping");
    const addr = comp === "enrollment" ? 0n : this.h.addr();
    if (addr === undefined) throw new Error("this IPCP has no address yet");
    const grant = await this.ports.allocate(dst, qos);
    // The grant is not taken then: the lower IPCP ends a flow nobody
    // attaches to.
    if (this.#stopped) throw new Error("the IPCP is stopping");
    const f = this.#open(grant, dst);
    const own = cepFor(comp, addr);
    f.comp = comp;
    f.send(encodeCep(own));
    let answer: Cep;
    try {
      const c = decodeCep(await f.recv(CEP_WAIT_MS));
      if (!c.ok) throw new Error(`bad CEP: ${c.error}`);
      answer = c.value;
      if (!cepAgrees(own, answer)) {
        throw new Error(
          answer.compName === "" && answer.protocol === ""
            ? `it has no ${comp} component`
            : `it speaks ${answer.protocol} version ${answer.prefVersion} syntax ${answer.prefSyntax}, not ${own.protocol} version ${own.prefVersion} syntax ${own.prefSyntax}`,
        );
      }
    } catch (e) {
      this.stats.cepFailed++;
      this.give(f, "CEP failed");
      throw new Error(
        `${dst} did not take our ${comp} connection: ${
          e instanceof Error ? e.message : e
        }`,
      );
    }
    if (comp !== "enrollment") {
      const bad = answer.address === 0n
        ? "no address"
        : this.h.badAddr(answer.address);
      if (bad !== undefined) {
        this.stats.cepFailed++;
        this.give(f, "bad address");
        throw new Error(`${dst} answered our ${comp} CEP with ${bad}`);
      }
      f.nb = answer.address;
      this.#up(f);
    } else f.state = "up";
    return f;
  }

  /** An N-1 flow the irmd gave us: CEP, then its component. */
  async accepted(grant: FlowGrant): Promise<void> {
    if (this.#stopped) return;
    if (this.#cepWaiting >= MAX_CEP_WAITING) {
      // Not taken: the lower IPCP ends a flow nobody attaches to.
      this.stats.refused++;
      this.h.log(
        "warn",
        `Refused N-1 flow ${grant.flowId}: ${MAX_CEP_WAITING} flows wait for their CEP already.`,
      );
      return;
    }
    let f: N1Flow;
    try {
      f = this.#open(grant, undefined);
    } catch (e) {
      this.h.log(
        "warn",
        `Cannot take N-1 flow ${grant.flowId}: ${
          e instanceof Error ? e.message : e
        }.`,
      );
      return;
    }
    let cep: Cep;
    this.#cepWaiting++;
    try {
      const c = decodeCep(await f.recv(CEP_WAIT_MS));
      if (!c.ok) throw new Error(c.error);
      cep = c.value;
    } catch (e) {
      this.stats.cepFailed++;
      this.h.log(
        "debug",
        `No CEP on N-1 flow ${f.id}: ${e instanceof Error ? e.message : e}.`,
      );
      this.give(f, "no CEP");
      return;
    } finally {
      this.#cepWaiting--;
    }
    const comp = cepComponent(cep);
    const addr = comp === "enrollment" ? 0n : this.h.addr();
    if (comp === undefined || addr === undefined) {
      this.stats.cepUnknown++;
      this.h.log(
        "debug",
        `Refused a connection for component "${cep.compName}" (${cep.protocol}).`,
      );
      f.send(encodeCep(CEP_UNKNOWN));
      this.give(f, "unknown component");
      return;
    }
    const bad = comp === "enrollment"
      ? undefined
      : cep.address === 0n
      ? "no address"
      : this.h.badAddr(cep.address);
    const busy = comp === "enrollment" && this.#enrollments >= MAX_ENROLLMENTS;
    if (bad !== undefined || busy) {
      // Refused before it is answered: the peer's connect fails at once.
      if (bad !== undefined) this.stats.cepFailed++;
      else this.stats.refused++;
      this.h.log(
        "warn",
        bad !== undefined
          ? `Refused a ${comp} connection whose CEP carries ${bad}.`
          : `Refused an enrollment: ${MAX_ENROLLMENTS} are being served.`,
      );
      f.send(encodeCep(CEP_UNKNOWN));
      this.give(f, "refused");
      return;
    }
    f.comp = comp;
    // The answer repeats what was asked (captured) and carries our address.
    f.send(encodeCep(cepFor(comp, addr)));
    if (comp === "enrollment") {
      f.state = "up";
      this.#enrollments++;
      try {
        await this.h.enroll(f);
      } finally {
        this.#enrollments--;
        this.give(f, "enrollment over");
      }
      return;
    }
    f.nb = cep.address;
    this.#up(f);
  }

  #up(f: N1Flow): void {
    f.state = "up";
    if (f.comp === "dt") this.ports.dt(f.id, f.qc);
    this.h.up(f);
    // What came right behind the CEP (a neighbour's LSDB often does, in
    // the same read) waited in the inbox while the CEP was looked at.
    for (const s of f.takeInbox()) {
      if (f.state !== "up") break;
      this.h.sdu(f, s);
    }
  }

  /** SDUs the data path read on flow `id`. */
  n1(id: number, sdus: Uint8Array[]): void {
    const f = this.#flows.get(id);
    if (f === undefined) {
      this.stats.dropped += sdus.length;
      return;
    }
    for (const s of sdus) {
      if (f.state === "up" && f.comp !== "enrollment") this.h.sdu(f, s);
      else if (f.state === "down" || !f.push(s)) this.stats.dropped++;
    }
  }

  /** The data path says flow `id` ended (it closed the connection). */
  n1Down(id: number, reason: string): void {
    const f = this.#flows.get(id);
    if (f === undefined) return;
    this.#flows.delete(id);
    this.#ended(f, reason);
  }

  /** Gives a flow up: the data path closes it, its component is told. */
  give(f: N1Flow, why: string): void {
    if (!this.#flows.delete(f.id)) return;
    this.ports.remove(f.id);
    this.#ended(f, why);
  }

  #ended(f: N1Flow, why: string): void {
    const wasUp = f.state === "up" && f.comp !== "enrollment";
    f.ended(why);
    if (wasUp) this.h.down(f, why);
  }

  /** Our flows to `dst` of a component. */
  allocatedTo(dst: string, comp: CepComponent): N1Flow[] {
    return this.flows(comp).filter((f) => f.dst === dst);
  }

  /** Gives every flow up; later connections are refused. */
  stop(): void {
    this.#stopped = true;
    for (const f of [...this.#flows.values()]) this.give(f, "IPCP stopping");
  }
}
