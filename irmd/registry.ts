/**
 * The irmd's registry of names, programs and processes, and the choice of
 * the process that gets an incoming flow. Pure state: no I/O, so that the
 * load-balancing rules are tested on their own.
 *
 * - A name has a policy and bound programs (each optionally an autostart
 *   program with its arguments). A process inherits every name that its
 *   program (by basename) is bound to; `bind process` binds one directly.
 * - Directly bound processes take precedence: while a name has one alive,
 *   only directly bound processes get its flows (this is how a name is tied
 *   to one specific process).
 * - Accepting processes are ordered by when they (re-)accepted:
 *   round-robin takes the earliest (FIFO), spill the latest (LIFO).
 */
import { OuroborosError } from "../lib/util/errors.ts";

export type Lb = "spill" | "round-robin";

export interface NameEntry {
  name: string;
  lb: Lb;
  /** Program path -> autostart arguments (undefined: not autostarted). */
  progs: Map<string, string[] | undefined>;
  created: number;
}

export type Binding = "inherited" | "bound";

export interface ProcEntry {
  pid: number;
  prog: string;
  names: Map<string, Binding>;
  /** 0 when not accepting; else the order in which it started accepting. */
  acceptSeq: number;
  announced: boolean;
}

export function basename(path: string): string {
  const parts = path.split("/").filter((p) => p !== "");
  return parts[parts.length - 1] ?? path;
}

export class Registry {
  readonly names = new Map<string, NameEntry>();
  readonly procs = new Map<number, ProcEntry>();
  #seq = 0;
  #created = 0;

  createName(name: string, lb: Lb): NameEntry {
    if (this.names.has(name)) {
      throw new OuroborosError("exists", `Name ${name} already exists.`);
    }
    const e: NameEntry = {
      name,
      lb,
      progs: new Map(),
      created: ++this.#created,
    };
    this.names.set(name, e);
    return e;
  }

  /** The name, created with `lb` when it does not exist. */
  ensureName(name: string, lb: Lb = "spill"): NameEntry {
    return this.names.get(name) ?? this.createName(name, lb);
  }

  getName(name: string): NameEntry {
    const e = this.names.get(name);
    if (e === undefined) {
      throw new OuroborosError("not_found", `Name ${name} does not exist.`);
    }
    return e;
  }

  destroyName(name: string): void {
    this.getName(name);
    this.names.delete(name);
    for (const p of this.procs.values()) p.names.delete(name);
  }

  /** Binds a program; processes of it that run already inherit the name. */
  bindProgram(
    prog: string,
    name: string,
    args: string[] | undefined,
  ): ProcEntry[] {
    const n = this.getName(name);
    n.progs.set(prog, args);
    const base = basename(prog);
    const inheriting: ProcEntry[] = [];
    for (const p of this.procs.values()) {
      if (p.prog === base && !p.names.has(name)) {
        p.names.set(name, "inherited");
        inheriting.push(p);
      }
    }
    return inheriting;
  }

  unbindProgram(prog: string, name: string): void {
    const n = this.getName(name);
    if (!n.progs.delete(prog)) {
      throw new OuroborosError(
        "not_found",
        `Program ${prog} is not bound to ${name}.`,
      );
    }
    const base = basename(prog);
    const stillBound = [...n.progs.keys()].some((p) => basename(p) === base);
    if (stillBound) return;
    for (const p of this.procs.values()) {
      if (p.prog === base && p.names.get(name) === "inherited") {
        p.names.delete(name);
      }
    }
  }

  /** A new process; returns the names it inherits (newest name first). */
  addProcess(pid: number, prog: string): ProcEntry {
    const p: ProcEntry = {
      pid,
      prog,
      names: new Map(),
      acceptSeq: 0,
      announced: false,
    };
    const names = [...this.names.values()].sort((a, b) =>
      b.created - a.created
    );
    for (const n of names) {
      for (const path of n.progs.keys()) {
        if (basename(path) === prog) {
          p.names.set(n.name, "inherited");
          break;
        }
      }
    }
    this.procs.set(pid, p);
    return p;
  }

  getProcess(pid: number): ProcEntry {
    const p = this.procs.get(pid);
    if (p === undefined) {
      throw new OuroborosError(
        "not_found",
        `Process ${pid} is not known to the irmd.`,
      );
    }
    return p;
  }

  removeProcess(pid: number): void {
    this.procs.delete(pid);
  }

  bindProcess(pid: number, name: string): void {
    this.getName(name);
    this.getProcess(pid).names.set(name, "bound");
  }

  unbindProcess(pid: number, name: string): void {
    const p = this.getProcess(pid);
    if (!p.names.delete(name)) {
      throw new OuroborosError(
        "not_found",
        `Process ${pid} is not bound to ${name}.`,
      );
    }
  }

  setAccepting(pid: number, accepting: boolean): void {
    const p = this.getProcess(pid);
    p.acceptSeq = accepting ? ++this.#seq : 0;
  }

  /** The processes that may serve this name now (directly bound ones win). */
  eligible(name: string): { procs: ProcEntry[]; direct: boolean } {
    const bound: ProcEntry[] = [];
    const inherited: ProcEntry[] = [];
    for (const p of this.procs.values()) {
      const b = p.names.get(name);
      if (b === "bound") bound.push(p);
      else if (b === "inherited") inherited.push(p);
    }
    return bound.length > 0
      ? { procs: bound, direct: true }
      : { procs: inherited, direct: false };
  }

  /** Picks the accepting process for a flow to `name`, by its policy; none -> undefined. */
  choose(name: string): ProcEntry | undefined {
    const n = this.getName(name);
    const accepting = this.eligible(name).procs.filter((p) => p.acceptSeq > 0);
    if (accepting.length === 0) return undefined;
    accepting.sort((a, b) => a.acceptSeq - b.acceptSeq);
    return n.lb === "round-robin"
      ? accepting[0]
      : accepting[accepting.length - 1];
  }

  /** Autostart programs of a name: [path, args]. */
  autostart(name: string): [string, string[]][] {
    const n = this.getName(name);
    const out: [string, string[]][] = [];
    for (const [path, args] of n.progs) {
      if (args !== undefined) out.push([path, args]);
    }
    return out;
  }
}
