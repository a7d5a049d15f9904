/**
 * `ouroboros irm`: manage the IPCPs, names and bindings of the local irmd.
 *
 * The grammar lives in irm_grammar.ts (`parseIrm`, unit-tested without an
 * irmd); this file sends the one request it yields and prints the answer.
 *
 * Output: help on stdout (exit 0); usage errors, irmd refusals and
 * "Failed to communicate with the Ouroboros IPC Resource Manager daemon at
 * <socket>: <why>. ..." on stderr (exit 1); tables on stdout. Unlike C, no blank line follows the
 * IPCP table or "No ... in system.".
 */
import { connectCtrl, type CtrlConn } from "../lib/ipc/ctrl.ts";
import { irmdUnreachableText } from "../lib/app/dev.ts";
import { OuroborosError } from "../lib/util/errors.ts";
import { irmdSocketPath, resolveRundir } from "../lib/ipc/rundir.ts";
import {
  type CallOf,
  type IrmCall,
  type IrmMethod,
  parseIrm,
} from "./irm_grammar.ts";

export {
  type IrmCall,
  type IrmParse,
  matchKeyword,
  type ParseEnv,
  parseIrm,
  renderIpcpList,
  renderNameList,
  renderProcList,
} from "./irm_grammar.ts";

const HELLO_TIMEOUT_MS = 5000;

/** "Failed to bootstrap IPCP: <message>." (one final period). */
export function failureText(failure: string, message: string): string {
  const m = message.trim().replace(/\.+$/, "");
  return m === "" ? `${failure}.` : `${failure}: ${m}.`;
}

async function send<M extends IrmMethod>(
  conn: CtrlConn,
  c: CallOf<M>,
): Promise<string> {
  const res = await conn.request(c.method, c.body, c.timeoutMs);
  return c.render(res);
}

/** Sends one call to the irmd of `rundir` and prints the outcome; the exit status. */
export async function execute(
  rundir: string | undefined,
  c: IrmCall,
): Promise<number> {
  let conn: CtrlConn;
  const path = irmdSocketPath(resolveRundir(rundir));
  try {
    conn = await connectCtrl(path);
  } catch (e) {
    console.error(irmdUnreachableText(path, e));
    return 1;
  }
  try {
    try {
      await conn.request(
        "hello",
        { role: "tool", pid: Deno.pid },
        HELLO_TIMEOUT_MS,
      );
    } catch (e) {
      console.error(irmdUnreachableText(path, e));
      return 1;
    }
    let out: string;
    try {
      out = await send(conn, c);
    } catch (e) {
      if (e instanceof OuroborosError && e.code === "closed") {
        console.error(irmdUnreachableText(path, e));
      } else {
        console.error(
          failureText(c.failure, e instanceof Error ? e.message : String(e)),
        );
      }
      return 1;
    }
    if (out !== "") console.log(out);
    return 0;
  } finally {
    conn.close();
  }
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseIrm(args);
  switch (parsed.kind) {
    case "help":
      console.log(parsed.text);
      return 0;
    case "error":
      console.error(parsed.text);
      return 1;
    case "request":
      for (const note of parsed.notes) console.log(note);
      return await execute(parsed.rundir, parsed.call);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
