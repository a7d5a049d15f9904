/**
 * The Worker of blocking_io_test.ts: plays the IPCP between two flows of
 * the test, each on one end of a socket pair. It answers each side's attach
 * frame with a status frame, then moves every packet frame from one side to
 * the other, dropping every `dropEvery`-th (0: none), until a side closes
 * (then it closes both) or its eventfd is written; it reports how many
 * frames it moved and dropped, and ends. It says "listening" first: a
 * message posted to a Worker before its module set onmessage is lost.
 */
import {
  closeFd,
  eventfdDrain,
  POLLIN,
  PollSet,
  readFd,
  writeFd,
} from "../sys/mod.ts";

interface WorkerScope {
  postMessage(message: unknown): void;
  onmessage: ((e: MessageEvent<unknown>) => void) | null;
  close(): void;
}

export interface RelayRequest {
  readonly a: number;
  readonly b: number;
  readonly stop: number;
  readonly dropEvery: number;
}

export interface RelayReport {
  readonly moved: number;
  readonly dropped: number;
  readonly why: string;
}

const scope = globalThis as unknown as WorkerScope;

/** One side: the bytes read that do not make a whole frame yet. */
class Side {
  buf = new Uint8Array(0);
  attached = false;
  /** Frames for this side that came before its attach frame was answered. */
  early: Uint8Array[] = [];
  constructor(readonly fd: number) {}

  /** Appends what was read; returns the whole frames (header included). */
  take(chunk: Uint8Array): Uint8Array[] {
    const all = new Uint8Array(this.buf.length + chunk.length);
    all.set(this.buf);
    all.set(chunk, this.buf.length);
    const frames: Uint8Array[] = [];
    let off = 0;
    while (all.length - off >= 4) {
      const len = new DataView(all.buffer, off, 4).getUint32(0);
      if (all.length - off < 4 + len) break;
      frames.push(all.slice(off, off + 4 + len));
      off += 4 + len;
    }
    this.buf = all.slice(off);
    return frames;
  }
}

function writeAll(fd: number, p: Uint8Array): boolean {
  let off = 0;
  while (off < p.length) {
    const r = writeFd(fd, p.subarray(off));
    if (!r.ok) return false;
    off += r.value;
  }
  return true;
}

scope.onmessage = (m: MessageEvent<unknown>) => {
  scope.onmessage = null;
  const req = m.data as RelayRequest;
  const sides = [new Side(req.a), new Side(req.b)] as const;
  const polls = new PollSet(3);
  polls.add(req.a, POLLIN);
  polls.add(req.b, POLLIN);
  polls.add(req.stop, POLLIN);
  const chunk = new Uint8Array(256 * 1024);
  let moved = 0;
  let dropped = 0;
  let data = 0;
  let why = "";
  loop: for (;;) {
    const r = polls.wait(-1);
    if (!r.ok) {
      why = `poll failed (${r.name})`;
      break;
    }
    if (polls.revents(2) !== 0) {
      eventfdDrain(req.stop);
      why = "stopped";
      break;
    }
    for (let i = 0; i < 2; i++) {
      if (polls.revents(i) === 0) continue;
      const from = sides[i]!;
      const to = sides[1 - i]!;
      const n = readFd(from.fd, chunk);
      if (!n.ok || n.value === 0) {
        why = `side ${i} closed`;
        break loop;
      }
      for (const f of from.take(chunk.subarray(0, n.value))) {
        if (!from.attached) {
          // As an IPCP does: the status first, then what waited for it.
          from.attached = true;
          writeAll(from.fd, new Uint8Array([0, 0, 0, 4, 0, 0, 0, 0]));
          for (const e of from.early.splice(0)) writeAll(from.fd, e);
          continue;
        }
        data++;
        if (req.dropEvery > 0 && data % req.dropEvery === 0) {
          dropped++;
          continue;
        }
        if (!to.attached) {
          to.early.push(f);
          moved++;
          continue;
        }
        if (!writeAll(to.fd, f)) {
          why = `side ${1 - i} went away`;
          break loop;
        }
        moved++;
      }
    }
  }
  closeFd(req.a);
  closeFd(req.b);
  const report: RelayReport = { moved, dropped, why };
  scope.postMessage(report);
  scope.close();
};
scope.postMessage("listening");
