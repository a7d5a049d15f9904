/**
 * `./run-demo --unicast`: the three-node line of spec/unicast.md (section
 * 9) on one machine, narrated as the tutorial-05 demo is.
 *
 * Three "machines" run as three irmds on loopback, each with its own runtime
 * directory, configuration file and hosts files: node A on 127.0.0.1, node B
 * on 127.0.0.2 (towards A) and 127.0.0.3 (towards C), node C on 127.0.0.4.
 * Link A-B is the UDP layer udp-ab, link B-C the UDP layer udp-bc. Over them
 * runs the unicast layer `uni`: uni-a on A bootstraps it, uni-b on B enrolls
 * with uni-a and connects to it, uni-c on C enrolls with uni-b and connects
 * to it. An `oping -l` server on C is registered in `uni` as `oping`, and A
 * pings it: A has no link to C, so B forwards every packet (A's forwarding
 * table sends C's address via B's).
 *
 * Every wait is on an event (a log line, an exit) with a deadline. Whatever
 * happens (success, failure, Ctrl-C), every process started is stopped and
 * the temporary directory removed (NarratedDemo in tools/demo.ts).
 */
import type { Proc } from "../lib/util/child.ts";
import { nameHashHex } from "../lib/wire/name_hash.ts";
import {
  bold,
  DEFAULT_PORT,
  delay,
  DemoError,
  type DemoNodeBase,
  dim,
  escapeRe,
  NarratedDemo,
  UNICAST_A_IP,
  UNICAST_B_IP_AB,
  UNICAST_B_IP_BC,
  UNICAST_C_IP,
} from "./demo.ts";

const REPO = decodeURIComponent(new URL("../", import.meta.url).pathname);
const LAUNCHER = `${REPO}bin/ouroboros`;

const A_IP = UNICAST_A_IP;
/** B's address on link A-B (udp-ab). */
const B_IP_AB = UNICAST_B_IP_AB;
/** B's address on link B-C (udp-bc). */
const B_IP_BC = UNICAST_B_IP_BC;
const C_IP = UNICAST_C_IP;
const LAYER = "uni";
const PINGS = 10;

/** Deadlines (ms). */
const EVENT_MS = 15_000;
/** More than one LSA refresh (ls_t_update, 15 s) and recalculation (4 s). */
const ROUTES_MS = 40_000;
/** A route not there after this long is narrated as awaited. */
const ROUTE_NOTE_MS = 3_000;
const SERVER_ACCEPT_MS = 15_000;
const CLIENT_RUN_MS = 30_000;

/** The log lines that tell the story; shown in bold when following a log. */
const KEY_LINES =
  /IPCP got address|Enrolled with|Enrollment completed\.|Added dt neighbour|Forwarding tables:/;

type Label = "A" | "B" | "C";

interface UniNode extends DemoNodeBase {
  label: Label;
  /** The unicast IPCP of the node, a member of layer uni. */
  member: string;
  /** Its hosts files, one per UDP layer. */
  hostsFiles: string[];
  /** The member's address in layer uni, once it has one. */
  addr?: bigint;
}

/** A hosts line for a lower-layer name (UDP layers know names by their MD5). */
function hostsLine(ip: string, name: string): string {
  return `${ip} ${nameHashHex(name)} #${name}\n`;
}

class UnicastDemo extends NarratedDemo<UniNode> {
  readonly #nodes: UniNode[] = [];
  #server: Proc | undefined;

  constructor(opts: { quiet?: boolean; port?: number }) {
    super({
      quiet: opts.quiet ?? false,
      port: opts.port ?? DEFAULT_PORT,
      slow: 1,
    });
  }

  protected override addresses(): readonly string[] {
    return [A_IP, B_IP_AB, B_IP_BC, C_IP];
  }

  protected override irmdsInStopOrder(): (Proc | undefined)[] {
    // The reverse of the start: C, B, A.
    return this.#nodes.map((n) => n.irmd).reverse();
  }

  protected override rerun(): string {
    return "./run-demo --unicast";
  }

  protected override where(node: UniNode): string {
    return `node ${node.label}`;
  }

  /** `addr (X)`: an address with the node whose member has it. */
  #named(addr: bigint | string): string {
    const n = this.#nodes.find((x) => x.addr === BigInt(addr));
    return n === undefined ? String(addr) : `${addr} (${n.label})`;
  }

  protected override async steps(): Promise<void> {
    const port = this.port;
    this.say(bold("Ouroboros: a unicast layer over three nodes in a line"));
    this.say(
      `Three "machines" as three irmds on loopback (spec/unicast.md, section 9): ` +
        `A on ${A_IP},`,
    );
    this.say(
      `B on ${B_IP_AB} and ${B_IP_BC}, C on ${C_IP}. Link A-B is the UDP layer ` +
        `udp-ab, link B-C the UDP layer udp-bc,`,
    );
    this.say(
      `both on port ${port}; over them runs the unicast layer "${LAYER}". ` +
        `Working directory: ${this.tmp}`,
    );

    // ---- 1: files
    this.step(1, "configuration files and hosts files");
    const a = await this.#makeNode("A");
    const b = await this.#makeNode("B");
    const c = await this.#makeNode("C");
    this.say(
      `Node A: its UDP IPCP udp-a (in udp-ab) registers the names of its ` +
        `unicast IPCP, uni-a and ${LAYER}; uni-a bootstraps the layer.`,
    );
    this.say(
      `Only B allocates flows in udp-ab (towards A), so A's hosts file is ` +
        `empty; and A needs no [name."oping"] to ping the server on C.`,
    );
    await this.cat(a);
    this.say(
      `Node B: one UDP IPCP on each link, each with its own hosts file; ` +
        `uni-b enrolls with uni-a and connects to it.`,
    );
    this.say(
      `The hosts file of udp-ab maps the MD5 of uni-a to A's address; ` +
        `nobody on B allocates in udp-bc.`,
    );
    await this.cat(b);
    this.say(
      `Node C: uni-c enrolls with uni-b (the hosts file of udp-bc maps the ` +
        `MD5 of uni-b to B's address on that link),`,
    );
    this.say(
      `connects to it, and registers oping in ${LAYER}; the oping program ` +
        `is bound to the name, so that "oping -l" accepts flows for it.`,
    );
    await this.cat(c);

    // ---- 2: A
    this.step(2, `node A: uni-a bootstraps the layer ${LAYER}`);
    await this.startIrmd(
      a,
      new RegExp(`Bootstrapped IPCP \\d+ in layer ${LAYER}\\.`),
    );
    a.addr = this.#address(a);
    this.result(
      `A: uni-a bootstrapped layer ${LAYER}; its address is ${a.addr}.`,
    );

    // ---- 3: B
    this.step(3, "node B: uni-b enrolls with uni-a, then connects to it");
    await this.#joinLine(b, a);

    // ---- 4: C
    this.step(4, "node C: uni-c enrolls with uni-b, then connects to it");
    await this.#joinLine(c, b);

    // ---- 5: routes
    this.step(5, "routing: link-state, every member learns every link");
    this.say(
      `Each member floods its adjacencies to its management neighbours; ` +
        `from them each computes its forwarding table.`,
    );
    const tables = new Map<Label, string>();
    const routes: [UniNode, UniNode, UniNode][] = [
      [a, c, b],
      [a, b, b],
      [b, a, a],
      [b, c, c],
      [c, a, b],
      [c, b, b],
    ];
    for (const [node, dst, via] of routes) {
      tables.set(node.label, await this.#route(node, dst, via));
    }
    this.result("");
    this.result(`Layer ${LAYER} has three members:`);
    const how: Record<Label, string> = {
      A: `bootstrapped ${LAYER}`,
      B: "enrolled with uni-a, connected to uni-a",
      C: "enrolled with uni-b, connected to uni-b",
    };
    for (const n of [a, b, c]) {
      this.result(
        `  ${n.label}  ${n.member}  address ${String(n.addr).padEnd(10)}  (${
          how[n.label]
        })`,
      );
    }
    this.result("Forwarding tables (destination via next hop):");
    for (const n of [a, b, c]) {
      const hops = tables.get(n.label)!.split(", ").map((h) => {
        const [d, v] = h.split(" via ");
        return `${this.#named(d!)} via ${
          v!.split("/").map((x) => this.#named(x)).join("/")
        }`;
      });
      this.result(`  ${n.label}: ${hops.join(", ")}`);
    }

    // ---- 6: server
    this.step(6, "an oping server on node C");
    await this.#startServer(c);
    this.result(
      `The oping server on C is process ${
        this.#server!.pid
      }; it accepts flows for oping, registered in ${LAYER} by uni-c.`,
    );

    // ---- 7: ping
    this.step(7, `node A pings oping: the flow and its packets go through B`);
    this.say(
      `A's irmd asks uni-a for a flow to oping; uni-a finds C's address in ` +
        `the directory (the DHT) and sends the flow request there: via B.`,
    );
    const ping = await this.#ping(a, c);
    this.result("");
    this.result(
      `${ping.sent} packets sent from A, ${ping.received} answered by the ` +
        `oping server on C (${ping.loss}).`,
    );
    this.result(
      `Every packet between A and C crossed B: A has no link to C, and A's ` +
        `forwarding table sends C's address ${c.addr} via B's ${b.addr}.`,
    );

    // ---- 8: shutdown (done by the cleanup, narrated here)
    this.step(
      8,
      "shut down: SIGTERM to the oping server, then to the irmds (C, B, A)",
    );
  }

  async #makeNode(label: Label): Promise<UniNode> {
    this.check();
    const dir = `${this.tmp}/${label}`;
    const ip = label === "A" ? A_IP : label === "B" ? B_IP_AB : C_IP;
    const member = `uni-${label.toLowerCase()}`;
    const node: UniNode = {
      label,
      aarch64: false,
      ip,
      dir,
      rundir: `${dir}/run`,
      conf: `${dir}/irmd.conf`,
      hosts: label === "C" ? `${dir}/hosts-bc` : `${dir}/hosts-ab`,
      member,
      hostsFiles: [],
    };
    await Deno.mkdir(`${dir}/bin`, { recursive: true });
    await Deno.symlink(LAUNCHER, `${dir}/bin/oping`);
    const port = this.port === DEFAULT_PORT ? "" : `port = ${this.port}\n`;
    const udp = (name: string, layer: string, at: string, hosts: string) =>
      `[udp4.${name}]
bootstrap = "${layer}"
ip = "${at}"
${port}hosts = "${hosts}"
`;
    const oping = `[name."oping"]
prog = ["${dir}/bin/oping"]

`;
    let conf: string;
    const hosts: Record<string, string> = {};
    if (label === "A") {
      hosts[`${dir}/hosts-ab`] =
        "# No entries: in udp-ab, only B allocates flows (to uni-a).\n";
      conf = `${udp("udp-a", "udp-ab", A_IP, `${dir}/hosts-ab`)}` +
        `reg = ["uni-a", "${LAYER}"]

[unicast.uni-a]
bootstrap = "${LAYER}"
autobind = true
`;
    } else if (label === "B") {
      hosts[`${dir}/hosts-ab`] = hostsLine(A_IP, "uni-a");
      hosts[`${dir}/hosts-bc`] =
        "# No entries: in udp-bc, only C allocates flows (to uni-b).\n";
      conf = `${udp("udp-b1", "udp-ab", B_IP_AB, `${dir}/hosts-ab`)}` +
        `reg = ["uni-b"]

${udp("udp-b2", "udp-bc", B_IP_BC, `${dir}/hosts-bc`)}reg = ["uni-b"]

[unicast.uni-b]
enrol = "uni-a"
conn = ["uni-a"]
autobind = true
`;
    } else {
      hosts[`${dir}/hosts-bc`] = hostsLine(B_IP_BC, "uni-b");
      conf = `${oping}${udp("udp-c", "udp-bc", C_IP, `${dir}/hosts-bc`)}
[unicast.uni-c]
enrol = "uni-b"
conn = ["uni-b"]
autobind = true
reg = ["oping"]
`;
    }
    await Deno.writeTextFile(node.conf, conf);
    for (const [f, text] of Object.entries(hosts)) {
      await Deno.writeTextFile(f, text);
      node.hostsFiles.push(f);
    }
    this.#nodes.push(node);
    return node;
  }

  protected override cat(node: UniNode): Promise<void> {
    return super.cat(node, [node.conf, ...node.hostsFiles]);
  }

  protected override follow(p: Proc, prefix: string): void {
    super.follow(p, prefix, KEY_LINES);
  }

  /** The member's address, from its "IPCP got address N" line. */
  #address(node: UniNode): bigint {
    for (const l of node.irmd!.lines) {
      const m = /IPCP got address (\d+)/.exec(l);
      if (m !== null) return BigInt(m[1]!);
    }
    throw new DemoError(`${node.member} logged no address.`, node);
  }

  /**
   * Starts `node`, whose member enrolls with the member of `peer` and
   * connects to it; waits for both sides of each event.
   */
  async #joinLine(node: UniNode, peer: UniNode): Promise<void> {
    const peerIrmd = peer.irmd!;
    const from = peerIrmd.lines.length;
    await this.startIrmd(
      node,
      new RegExp(
        `Connected IPCP \\d+ to ${escapeRe(peer.member)} for dt\\b`,
      ),
    );
    node.addr = this.#address(node);
    await this.waitIrmd(
      node,
      new RegExp(`Enrolled with ${escapeRe(peer.member)} in layer ${LAYER}\\.`),
      this.ms(EVENT_MS),
    );
    await this.waitIrmd(
      peer,
      /Enrollment completed\./,
      this.ms(EVENT_MS),
      from,
    );
    this.result(
      `${node.label}: ${node.member} enrolled with ${peer.member} (${peer.label} ` +
        `logged "Enrollment completed."); its address is ${node.addr}.`,
    );
    const mine = await this.waitIrmd(
      node,
      new RegExp(`Added dt neighbour ${peer.addr} \\(N-1 flow \\d+\\)\\.`),
      this.ms(EVENT_MS),
    );
    const theirs = await this.waitIrmd(
      peer,
      new RegExp(`Added dt neighbour ${node.addr} \\(N-1 flow \\d+\\)\\.`),
      this.ms(EVENT_MS),
      from,
    );
    const flow = (l: string) => /N-1 flow (\d+)/.exec(l)![1];
    this.result(
      `${node.label}: ${node.member} connected to ${peer.member}: each added ` +
        `the other as dt neighbour (N-1 flow ${flow(mine)} on ${node.label}, ` +
        `${flow(theirs)} on ${peer.label}).`,
    );
  }

  /** Waits for `node`'s forwarding table to reach `dst` via `via`; the table. */
  async #route(node: UniNode, dst: UniNode, via: UniNode): Promise<string> {
    let line: string;
    const note = delay(ROUTE_NOTE_MS);
    let waiting = true;
    void note.promise.then(() => {
      if (waiting) {
        this.say(
          dim(
            `  (waiting for ${node.label}'s route to ${dst.label}: each ` +
              `member floods its adjacencies again every 15 s)`,
          ),
        );
      }
    });
    try {
      line = await this.waitIrmd(
        node,
        new RegExp(`Forwarding tables: .*\\b${dst.addr} via ${via.addr}\\b`),
        this.ms(ROUTES_MS),
      );
    } catch (e) {
      this.check();
      if (!(e instanceof DemoError) || !/did not get ready/.test(e.message)) {
        throw e;
      }
      throw new DemoError(
        `${node.member} has no route to ${dst.member} via ${via.member} ` +
          `within ${this.ms(ROUTES_MS) / 1000} s.`,
        node,
      );
    } finally {
      waiting = false;
      note.cancel();
    }
    // The last table so far (a later one may have been logged meanwhile).
    const all = node.irmd!.lines.filter((l) => /Forwarding tables: /.test(l));
    const last = all[all.length - 1] ?? line;
    return /Forwarding tables: (.*)\.$/.exec(last)![1]!;
  }

  async #startServer(node: UniNode): Promise<void> {
    const irmd = node.irmd!;
    const from = irmd.lines.length;
    this.say();
    this.command(`${node.dir}/bin/oping -l`, this.where(node));
    const p = this.spawn("oping server", [`${node.dir}/bin/oping`, "-l"], node);
    this.#server = p;
    this.follow(p, `${node.label} | [oping -l]`);
    const exited = p.status.then(() => "exited" as const);
    const wait = async (re: RegExp, after: number): Promise<number> => {
      try {
        const r = await Promise.race([
          irmd.waitFor(re, this.ms(SERVER_ACCEPT_MS), after),
          exited,
        ]);
        if (r === "exited") {
          throw new DemoError(
            `the oping server (process ${p.pid}) exited before it accepted flows.`,
            node,
            p,
          );
        }
        return irmd.lines.indexOf(r, after);
      } catch (e) {
        this.check();
        if (e instanceof DemoError) throw e;
        throw new DemoError(
          `the oping server (process ${p.pid}) did not accept flows within ${
            this.ms(SERVER_ACCEPT_MS) / 1000
          } s.`,
          node,
          p,
        );
      }
    };
    const added = await wait(
      new RegExp(`New instance \\(${p.pid}\\) of oping added\\.`),
      from,
    );
    const accepts = await wait(/This process accepts flows for:/, added);
    await wait(/irmd\(DB\):\s+oping$/, accepts);
  }

  /** `oping -n oping -c PINGS` on A; its output lines are results. */
  async #ping(
    a: UniNode,
    c: UniNode,
  ): Promise<{ sent: number; received: number; loss: string }> {
    const args = ["-n", "oping", "-c", String(PINGS), "-i", "200ms"];
    this.say();
    this.command(`oping ${args.join(" ")}`, this.where(a));
    if (this.quiet) this.result(`$ oping ${args.join(" ")}`);
    const p = this.spawn("oping client", [`${a.dir}/bin/oping`, ...args], a);
    let r: { code: number; stdout: string; stderr: string };
    try {
      r = await p.exit(this.ms(CLIENT_RUN_MS));
    } catch {
      this.check();
      // exit() killed it: nothing for the cleanup to stop.
      this.procs.splice(this.procs.indexOf(p), 1);
      throw new DemoError(
        `oping ${args.join(" ")} did not finish within ${
          this.ms(CLIENT_RUN_MS) / 1000
        } s.`,
        a,
        p,
      );
    }
    this.check();
    for (const l of p.out) this.result(`    ${l}`);
    if (r.code !== 0) {
      throw new DemoError(
        `oping ${args.join(" ")} failed (exit code ${r.code}).`,
        c,
        p,
      );
    }
    const st =
      /(\d+) packets transmitted, (\d+) received, .*?(\d+% packet loss)/
        .exec(r.stdout);
    if (st === null) {
      throw new DemoError(`oping printed no statistics.`, a, p);
    }
    const sent = Number(st[1]);
    const received = Number(st[2]);
    if (sent !== PINGS || received !== sent) {
      // Loopback loses nothing: a lost ping is a fault of the layers.
      throw new DemoError(
        `${received} of the ${PINGS} pings were answered (${sent} sent).`,
        c,
        p,
      );
    }
    return { sent, received, loss: st[3]! };
  }
}

/** Runs the unicast demo; resolves to the exit status (0, 1, or 130). */
export async function runUnicastDemo(
  opts: { quiet?: boolean; port?: number } = {},
): Promise<number> {
  return await new UnicastDemo(opts).run();
}
