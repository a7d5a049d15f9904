/**
 * Which of the irmd's IPCPs a flow allocation asks, in which order. Pure,
 * so that the rules are tested without processes.
 *
 * - Only IPCPs in a layer (bootstrapped or enrolled) and connected to the
 *   irmd are asked.
 * - Local layers first, then unicast ones (the order in which C asks
 *   them), then the others (UDP); in creation order within a type.
 * - An IPCP that allocates a flow for itself (a unicast IPCP's N-1 flows:
 *   its process is an application of the layers below it) never gets it
 *   carried by itself, nor by another IPCP of its own layer, nor of the
 *   layer it is joining: a layer is never built on itself; nor by an IPCP
 *   of a layer built (directly or further up) over the requester's own,
 *   as `over` records it (uni2 over uni: uni's N-1 flows are never asked
 *   of uni2, whose own flows go through uni).
 */
import type { IpcpTypeName } from "../lib/ipc/proto.ts";

/** What the choice needs to know of an IPCP. */
export interface LayerCandidate {
  pid: number;
  type: IpcpTypeName;
  /** Its layer, once bootstrapped or enrolled. */
  layer: string | undefined;
  /** An enrollment under way, and the layer it named, if it did. */
  enrolling: { layer: string | undefined } | undefined;
  /** Its control connection, once it has connected back to the irmd. */
  conn: object | undefined;
  /** Its rank among the IPCPs in creation order. */
  created: number;
}

function rank(t: IpcpTypeName): number {
  return t === "local" ? 0 : t === "unicast" ? 1 : 2;
}

/**
 * The IPCPs to ask, in order, for a flow that process `requester`
 * allocates, and the IPCP that `requester` is, if it is one.
 */
export function layersFor<C extends LayerCandidate>(
  ipcps: Iterable<C>,
  requester: number,
  over: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
): { candidates: C[]; self: C | undefined } {
  const all = [...ipcps];
  const self = all.find((i) => i.pid === requester);
  const own = new Set<string>();
  if (self?.layer !== undefined) own.add(self.layer);
  if (self?.enrolling?.layer !== undefined) own.add(self.enrolling.layer);
  // ...and every layer that rests on one of those, however far up.
  for (let grew = own.size > 0; grew;) {
    grew = false;
    for (const [upper, lowers] of over) {
      if (own.has(upper)) continue;
      if ([...lowers].some((l) => own.has(l))) {
        own.add(upper);
        grew = true;
      }
    }
  }
  const candidates = all
    .filter((i) => i.layer !== undefined && i.conn !== undefined)
    .filter((i) => i !== self && !own.has(i.layer!))
    .sort((a, b) => rank(a.type) - rank(b.type) || a.created - b.created);
  return { candidates, self };
}

/**
 * Records that layer `upper` has an N-1 flow in layer `lower` (an IPCP of
 * `upper` allocated a flow that an IPCP of `lower` carries).
 */
export function recordOver(
  over: Map<string, Set<string>>,
  upper: string,
  lower: string,
): void {
  let s = over.get(upper);
  if (s === undefined) over.set(upper, s = new Set());
  s.add(lower);
}
