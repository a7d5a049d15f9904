/**
 * Entry point of ipcpd-local. The irmd starts it:
 *   ouroboros ipcpd-local --name <ipcp> [--rundir DIR] [--debug]
 * The process itself is ipcpd/common/ipcp_main.ts, the IPCP ./ipcp.ts.
 */
import { runIpcp } from "../common/ipcp_main.ts";
import { LocalIpcp } from "./ipcp.ts";

export function main(args: string[]): Promise<number> {
  return runIpcp("local", args, (name, rundir) => new LocalIpcp(name, rundir));
}
