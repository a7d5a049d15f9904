/**
 * Entry point of ipcpd-unicast. The irmd starts it with the program's
 * deno.json configuration (its codecs use protobufjs, an npm package):
 *   ouroboros ipcpd-unicast --name <ipcp> [--rundir DIR] [--debug]
 * The process itself is ipcpd/common/ipcp_main.ts, the IPCP ./ipcp.ts.
 */
import { runIpcp } from "../common/ipcp_main.ts";
import { UnicastIpcp } from "./ipcp.ts";

export function main(args: string[]): Promise<number> {
  return runIpcp(
    "unicast",
    args,
    (name, rundir) => new UnicastIpcp(name, rundir),
  );
}
