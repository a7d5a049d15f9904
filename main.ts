/**
 * `ouroboros`: one program whose subcommands are the Ouroboros processes and
 * tools. It also runs as a subcommand when invoked under that subcommand's
 * name (a link named `oping` to the launcher or to the compiled program).
 */
import { VERSION } from "./lib/util/version.ts";
import { DATAPATH_WORKER_NAME, setMainModule } from "./lib/util/self.ts";

type Entry = {
  summary: string;
  load: () => Promise<{ main: (args: string[]) => Promise<number> }>;
};

const SUBCOMMANDS: Record<string, Entry> = {
  irmd: {
    summary: "the IPC Resource Manager daemon",
    load: () => import("./irmd/main.ts"),
  },
  "ipcpd-udp4": {
    summary: "an IPC process over UDP/IPv4 (started by the irmd)",
    load: () =>
      import("./ipcpd/udp/main.ts").then((m) => ({ main: m.mainUdp4 })),
  },
  "ipcpd-udp6": {
    summary: "an IPC process over UDP/IPv6 (started by the irmd)",
    load: () =>
      import("./ipcpd/udp/main.ts").then((m) => ({ main: m.mainUdp6 })),
  },
  "ipcpd-udp": {
    summary: "the same as ipcpd-udp4 (the tutorial's name)",
    load: () =>
      import("./ipcpd/udp/main.ts").then((m) => ({ main: m.mainUdp })),
  },
  "ipcpd-local": {
    summary:
      "an IPC process for flows between programs of this machine (started by the irmd)",
    load: () => import("./ipcpd/local/main.ts"),
  },
  "ipcpd-unicast": {
    summary:
      "an IPC process of a unicast layer (started by the irmd; one-member layers for now)",
    load: () => import("./ipcpd/unicast/main.ts"),
  },
  irm: {
    summary: "manage the IPCPs, names and bindings of the local irmd",
    load: () => import("./tools/irm.ts"),
  },
  oping: {
    summary: "ping a name over a flow, or serve pings (-l)",
    load: () => import("./tools/oping.ts"),
  },
  ocbr: {
    summary: "send at a constant bit rate to a name, or count (-l)",
    load: () => import("./tools/ocbr.ts"),
  },
};

/** Names this program answers to, for links such as /usr/bin/oping. */
export const PROGRAM_NAMES: readonly string[] = Object.keys(SUBCOMMANDS);

function usage(): string {
  const width = Math.max(...PROGRAM_NAMES.map((n) => n.length));
  const lines = [
    `ouroboros ${VERSION}: the Ouroboros recursive network architecture`,
    "",
    "Usage: ouroboros <command> [options]",
    "",
    "Commands:",
    ...PROGRAM_NAMES.map((n) =>
      `  ${n.padEnd(width)}  ${SUBCOMMANDS[n]?.summary ?? ""}`
    ),
    `  ${
      "help".padEnd(width)
    }  this text; 'ouroboros <command> --help' for a command`,
    "",
    "Options: --version, --help",
    "",
    "Each command also runs when the program is invoked under its name,",
    "e.g. through a link: ln -s $(command -v ouroboros) /usr/local/bin/oping",
  ];
  return lines.join("\n");
}

/** The name this process was started under, for a compiled program behind a link. */
function invokedName(): string | undefined {
  if (!Deno.build.standalone) return undefined;
  try {
    const argv0 = Deno.readTextFileSync("/proc/self/cmdline").split("\0")[0] ??
      "";
    return argv0.split("/").pop();
  } catch {
    return undefined;
  }
}

export async function dispatch(argv: string[]): Promise<number> {
  let args = argv;
  const asName = invokedName();
  if (asName !== undefined && asName in SUBCOMMANDS) args = [asName, ...argv];
  const [cmd, ...rest] = args;
  if (cmd === undefined) {
    // Asked for nothing: the usage is an error message, as for any tool.
    console.error(usage());
    return 2;
  }
  if (cmd === "help" || cmd === "--help" || cmd === "-h") {
    console.log(usage());
    return 0;
  }
  if (cmd === "--version" || cmd === "-V" || cmd === "version") {
    console.log(`ouroboros ${VERSION}`);
    return 0;
  }
  const entry = SUBCOMMANDS[cmd];
  if (entry === undefined) {
    console.error(`ouroboros: unknown command "${cmd}", try "ouroboros help".`);
    return 2;
  }
  const mod = await entry.load();
  return await mod.main(rest);
}

// An IPCP's data path runs this same module in a Worker of that name
// (lib/util/self.ts): it runs the data path, not the command line.
const threadName = (globalThis as { name?: unknown }).name;
if (threadName === DATAPATH_WORKER_NAME) {
  const { datapathWorkerMain } = await import("./ipcpd/common/dp_worker.ts");
  datapathWorkerMain();
} else if (import.meta.main) {
  setMainModule(import.meta.url);
  const code = await dispatch(Deno.args);
  Deno.exit(code);
}
