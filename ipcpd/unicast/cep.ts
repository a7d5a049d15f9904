/**
 * Connection establishment (CEP): the first SDU each way on every N-1 flow
 * of a unicast IPCP, naming the component the flow belongs to and carrying
 * the sender's address (spec/unicast.md 2.2; proto/cep.proto).
 *
 * The allocator writes its CEP first; the acceptor looks the component up
 * by `compName`, answers with its own CEP for that component (an unknown
 * name gets `CEP_UNKNOWN` and the flow is dropped), and the allocator takes
 * the answer only if `cepAgrees(own, answer)`.
 *
 * As captured from C 0.23 peers, a CEP carries exactly fields 1, 2, 3, 5
 * and 8, zeros included: 23 bytes for Enrollment, 27 for Management and 30
 * for Data Transfer when the address is at least 2^28.
 */
import { err, type Result } from "../../lib/util/result.ts";
import {
  checkI32,
  checkU32,
  checkU64,
  pbDecode,
  pbEncode,
  type PbFields,
  pbType,
} from "./pb.ts";

/** The largest CEP a C peer can read (its receive buffer). */
export const CEP_MAX_LEN = 128;

export const COMP_ENROLLMENT = "Enrollment";
export const COMP_MANAGEMENT = "Management";
export const COMP_DT = "Data Transfer";

export const PROTO_OEP = "OEP";
export const PROTO_LSP = "LSP";
export const PROTO_DTP = "dtp";

/** Concrete syntaxes. */
export const SYNTAX_GPB = 0;
export const SYNTAX_FIXED = 2;

/** Field lengths of a fixed syntax (field 7; never sent by C peers). */
export interface CepSyntaxSpec {
  fids: number[];
  lens: number[];
}

export interface Cep {
  compName: string;
  protocol: string;
  prefVersion: number;
  /** never sent by C peers, ignored */
  suppVersion: number[];
  prefSyntax: number;
  /** never sent by C peers, ignored */
  suppSyntax: number[];
  /** never sent by C peers, ignored */
  syntaxSpec?: CepSyntaxSpec;
  /** the sender's address; 0 on an enrollment flow */
  address: bigint;
}

/** The three components an N-1 flow can belong to. */
export type CepComponent = "enrollment" | "management" | "dt";

const COMPONENTS: Readonly<
  Record<CepComponent, { compName: string; protocol: string; syntax: number }>
> = Object.freeze({
  enrollment: { compName: COMP_ENROLLMENT, protocol: PROTO_OEP, syntax: 0 },
  management: { compName: COMP_MANAGEMENT, protocol: PROTO_LSP, syntax: 0 },
  dt: { compName: COMP_DT, protocol: PROTO_DTP, syntax: SYNTAX_FIXED },
});

/**
 * The CEP a member sends for `comp`, as C 0.23 does: version 1, GPB for
 * enrollment and management, FIXED for data transfer. `address` is the
 * sender's own (give 0 for enrollment).
 */
export function cepFor(comp: CepComponent, address: bigint): Cep {
  const c = COMPONENTS[comp];
  return {
    compName: c.compName,
    protocol: c.protocol,
    prefVersion: 1,
    suppVersion: [],
    prefSyntax: c.syntax,
    suppSyntax: [],
    address,
  };
}

/** The component a CEP names by its exact comp_name, if any. */
export function cepComponent(c: Cep): CepComponent | undefined {
  for (const [k, v] of Object.entries(COMPONENTS)) {
    if (v.compName === c.compName) return k as CepComponent;
  }
  return undefined;
}

/**
 * The answer to a CEP naming no known component: empty strings and zeros
 * (`0a 00 12 00 18 00 28 00 40 00`).
 */
export const CEP_UNKNOWN: Readonly<Cep> = Object.freeze({
  compName: "",
  protocol: "",
  prefVersion: 0,
  suppVersion: [],
  prefSyntax: 0,
  suppSyntax: [],
  address: 0n,
});

/**
 * Whether the allocator takes the acceptor's `answer` to its `own` CEP:
 * protocol, preferred version and preferred syntax equal (the component
 * name is not compared, as in C).
 */
export function cepAgrees(own: Cep, answer: Cep): boolean {
  return own.protocol === answer.protocol &&
    own.prefVersion === answer.prefVersion &&
    own.prefSyntax === answer.prefSyntax;
}

const CEP_MSG = pbType("cep_msg");

function cepFields(c: Cep): PbFields {
  const spec = c.syntaxSpec;
  return {
    comp_name: c.compName,
    protocol: c.protocol,
    pref_version: c.prefVersion,
    supp_version: c.suppVersion,
    pref_syntax: c.prefSyntax,
    supp_syntax: c.suppSyntax,
    syntax_spec: spec && { fids: spec.fids, lens: spec.lens },
    address: c.address,
  };
}

/**
 * Encodes a CEP. Throws a RangeError for a value out of its field's range
 * or a message longer than CEP_MAX_LEN.
 */
export function encodeCep(c: Cep): Uint8Array {
  checkI32("prefVersion", c.prefVersion);
  checkI32("prefSyntax", c.prefSyntax);
  c.suppVersion.forEach((v) => checkI32("suppVersion", v));
  c.suppSyntax.forEach((v) => checkI32("suppSyntax", v));
  checkU64("address", c.address);
  if (c.syntaxSpec !== undefined) {
    c.syntaxSpec.fids.forEach((v) => checkU32("syntaxSpec.fids", v));
    c.syntaxSpec.lens.forEach((v) => checkU32("syntaxSpec.lens", v));
  }
  const out = pbEncode(CEP_MSG, cepFields(c));
  if (out.length > CEP_MAX_LEN) {
    throw new RangeError(
      `CEP of ${out.length} bytes exceeds ${CEP_MAX_LEN} bytes`,
    );
  }
  return out;
}

/**
 * Decodes a CEP. Never throws; an error for bytes that are no cep_msg and
 * for a message longer than CEP_MAX_LEN (no C peer could have read it,
 * which also bounds both strings).
 */
export function decodeCep(buf: Uint8Array): Result<Cep> {
  if (buf.length > CEP_MAX_LEN) {
    return err(`CEP of ${buf.length} bytes exceeds ${CEP_MAX_LEN} bytes`);
  }
  const r = pbDecode(CEP_MSG, buf, (m) => {
    const c: Cep = {
      compName: m.str("comp_name"),
      protocol: m.str("protocol"),
      prefVersion: m.int("pref_version"),
      suppVersion: m.ints("supp_version"),
      prefSyntax: m.int("pref_syntax"),
      suppSyntax: m.ints("supp_syntax"),
      address: m.long("address"),
    };
    const spec = m.opt("syntax_spec");
    if (spec !== undefined) {
      c.syntaxSpec = { fids: spec.ints("fids"), lens: spec.ints("lens") };
    }
    return c;
  });
  // Written back canonically (a negative int32 takes 10 bytes), a message
  // that fits here may not: such a CEP could not be answered in kind.
  if (r.ok && pbEncode(CEP_MSG, cepFields(r.value)).length > CEP_MAX_LEN) {
    return err(`CEP re-encodes to more than ${CEP_MAX_LEN} bytes`);
  }
  return r;
}
