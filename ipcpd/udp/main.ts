/**
 * Entry point of ipcpd-udp4 and ipcpd-udp6. The irmd starts them:
 *   ouroboros ipcpd-udp4 --name <ipcp> [--rundir DIR] [--debug]
 * The process itself is ipcpd/common/ipcp_main.ts, the IPCP ./ipcp.ts.
 */
import { runIpcp } from "../common/ipcp_main.ts";
import { UdpIpcp } from "./ipcp.ts";

/** `as` is the name the program was called by (udp, udp4 or udp6). */
function run(
  family: 4 | 6,
  args: string[],
  as = `udp${family}`,
): Promise<number> {
  return runIpcp(
    as,
    args,
    (name, rundir) => new UdpIpcp(name, family, rundir),
  );
}

export function mainUdp4(args: string[]): Promise<number> {
  return run(4, args);
}

/** `ipcpd-udp`, the tutorial's name for ipcpd-udp4. */
export function mainUdp(args: string[]): Promise<number> {
  return run(4, args, "udp");
}

export function mainUdp6(args: string[]): Promise<number> {
  return run(6, args);
}
