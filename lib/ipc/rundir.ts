/**
 * The runtime directory that holds a node's sockets: /run/ouroboros for root,
 * a per-user directory otherwise. `--rundir DIR` or OUROBOROS_RUNDIR chooses
 * another, so that several irmds (several "machines") run side by side.
 */
import { OuroborosError } from "../util/errors.ts";

export const RUNDIR_ENV = "OUROBOROS_RUNDIR";

export function defaultRundir(): string {
  const uid = Deno.uid();
  if (uid === 0) return "/run/ouroboros";
  const xdg = Deno.env.get("XDG_RUNTIME_DIR");
  if (xdg !== undefined && xdg !== "") return `${xdg}/ouroboros`;
  return `/tmp/ouroboros-${uid ?? "user"}`;
}

/** The flag's value, else the environment's, else the default. */
export function resolveRundir(flag?: string): string {
  if (flag !== undefined && flag !== "") return flag;
  const env = Deno.env.get(RUNDIR_ENV);
  if (env !== undefined && env !== "") return env;
  return defaultRundir();
}

export function irmdSocketPath(dir: string): string {
  return `${dir}/irmd.sock`;
}

export function ipcpSocketPath(dir: string, pid: number): string {
  return `${dir}/ipcp.${pid}.sock`;
}

/** Unix socket paths are limited to 107 bytes on Linux. */
export function checkSocketPath(path: string): void {
  if (new TextEncoder().encode(path).length > 107) {
    throw new OuroborosError(
      "invalid",
      `socket path ${path} is longer than 107 bytes; choose a shorter runtime directory (--rundir)`,
    );
  }
}

/** The largest process id Linux hands out (pid_max at most 2^22). */
const MAX_PID = 4_194_304;

/**
 * Creates the directory (owner-only access) when needed. Everything is
 * checked before anything is created: a directory whose sockets could not
 * be bound (too long a path) or a path that is not a directory is refused
 * with nothing made.
 */
export async function ensureRundir(dir: string): Promise<void> {
  checkSocketPath(ipcpSocketPath(dir, MAX_PID));
  let st: Deno.FileInfo | undefined;
  try {
    st = await Deno.stat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotADirectory) throw notADirectory(dir);
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (st === undefined) {
    try {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        // Some part of the path is a file, or the directory appeared meanwhile.
        throw notADirectory(dir);
      }
      if (e instanceof Deno.errors.NotADirectory) throw notADirectory(dir);
      throw e;
    }
    st = await Deno.stat(dir);
  }
  if (!st.isDirectory) throw notADirectory(dir);
  if (st.uid === Deno.uid() && st.mode !== null && (st.mode & 0o077) !== 0) {
    await Deno.chmod(dir, 0o700);
  }
}

function notADirectory(dir: string): OuroborosError {
  return new OuroborosError(
    "invalid",
    `runtime directory ${dir} is not a directory (a file, or a path through a file, is in the way; choose another with --rundir)`,
  );
}

/** Listens on a Unix socket that only the owner may use. */
export function listenUnix(path: string): Deno.UnixListener {
  checkSocketPath(path);
  const listener = Deno.listen({ transport: "unix", path });
  Deno.chmodSync(path, 0o600);
  return listener;
}

/** The wait before accepting again after an accept failed. */
export const ACCEPT_RETRY_MS = 100;

/** What `acceptLoop` needs of a listener. */
export interface Acceptor<C> {
  accept(): Promise<C>;
}

/**
 * Hands every connection of `listener` to `onConn` until the listener is
 * closed. An accept that fails for another reason (the process is out of
 * file descriptors, say) does not end the loop: `onFail` hears of the first
 * failure of a run of them and `onResume` of the first success after it,
 * and the loop tries again every ACCEPT_RETRY_MS.
 */
export async function acceptLoop<C>(
  listener: Acceptor<C>,
  onConn: (conn: C) => void,
  onFail: (e: unknown) => void,
  onResume: (failures: number) => void,
): Promise<void> {
  let failures = 0;
  for (;;) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (e) {
      if (
        e instanceof Deno.errors.BadResource ||
        e instanceof Deno.errors.Interrupted
      ) return; // closed
      if (failures++ === 0) onFail(e);
      await new Promise((r) => setTimeout(r, ACCEPT_RETRY_MS));
      continue;
    }
    if (failures > 0) {
      onResume(failures);
      failures = 0;
    }
    onConn(conn);
  }
}

/** Removes a file, ignoring its absence. */
export function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // gone already
  }
}
