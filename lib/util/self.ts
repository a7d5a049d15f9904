/**
 * How this program starts another copy of itself (the irmd starting its
 * IPCPs, tests starting nodes): the compiled program runs directly; from
 * source or from the bundle, through `deno run` with the same permissions.
 */

/** The permissions every subcommand needs, as `deno run` flags. */
export const PERMISSION_FLAGS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
  // The IPCPs' data path makes system calls through FFI (lib/sys/).
  "--allow-ffi",
  "--unstable-net",
];

/**
 * The name of an IPCP's data-path Worker. The Worker runs this program's
 * main module (main.ts, or the bundle), whose start looks at its own name to
 * run the data path instead of the command line: one module that exists
 * from source, in the bundle and in a compiled program alike.
 */
export const DATAPATH_WORKER_NAME = "o7s-ipcp-datapath";

let mainModule: URL = new URL("../../main.ts", import.meta.url);

/** Called by main.ts with its own URL (the bundle's, once bundled). */
export function setMainModule(url: string | URL): void {
  mainModule = new URL(url);
}

/** The URL of the program's main module: what a Worker of the program runs. */
export function mainModuleUrl(): URL {
  return mainModule;
}

/**
 * The command line that runs `ouroboros <sub> <args...>`. Only a process
 * that parses a configuration file needs deno.json (its npm imports):
 * `npm: true`.
 */
export function selfCommand(
  sub: string,
  args: readonly string[] = [],
  opts: { npm?: boolean } = {},
): string[] {
  if (Deno.build.standalone) return [Deno.execPath(), sub, ...args];
  const flags = ["run", "-q", ...PERMISSION_FLAGS];
  if (mainModule.pathname.endsWith("/main.ts") && opts.npm === true) {
    flags.push("--config", new URL("deno.json", mainModule).pathname);
  } else {
    // Without a configuration file a process starts smaller (no npm
    // resolution); the bundle is self-contained anyway.
    flags.push("--no-config");
  }
  return [Deno.execPath(), ...flags, mainModule.pathname, sub, ...args];
}
