/**
 * A unicast layer's configuration from what the irmd bootstraps it with
 * (`irm ipcp bootstrap type unicast ...`, a `[unicast.<name>]` stanza):
 * the layer name, the name hash and the settings of spec/unicast.md 2.4,
 * each absent one taking its default. The result is the `ipcp_config_msg`
 * a later enrollment hands out, vetted by `checkUnicastConfig`.
 */
import type { UnicastParams } from "../../lib/ipc/proto.ts";
import { err, ok, type Result } from "../../lib/util/result.ts";
import type { Sha3Algo } from "../../lib/wire/name_hash.ts";
import {
  checkUnicastConfig,
  CONG_MB_ECN,
  CONG_NONE,
  defaultLayerConfig,
  HASH_SHA3_224,
  HASH_SHA3_256,
  HASH_SHA3_384,
  HASH_SHA3_512,
  type IpcpConfig,
  LS_ECMP,
  LS_LFA,
  LS_SIMPLE,
  type UnicastLayer,
} from "./enroll.ts";

/** The dir_hash_algo of each name hash a unicast layer may use. */
export const DIR_HASH_ALGO: Readonly<Record<Sha3Algo, number>> = {
  SHA3_224: HASH_SHA3_224,
  SHA3_256: HASH_SHA3_256,
  SHA3_384: HASH_SHA3_384,
  SHA3_512: HASH_SHA3_512,
};

/** The name hash of a dir_hash_algo, undefined if unknown. */
export function sha3OfDirHash(algo: number): Sha3Algo | undefined {
  const e = Object.entries(DIR_HASH_ALGO).find(([, v]) => v === algo);
  return e?.[0] as Sha3Algo | undefined;
}

const LS_POLICY = { "link-state": LS_SIMPLE, lfa: LS_LFA, ecmp: LS_ECMP };

/**
 * The layer configuration for bootstrapping layer `name` with hash `hash`
 * and settings `p`; an error naming the first setting a member cannot run.
 */
export function bootstrapConfig(
  name: string,
  hash: Sha3Algo,
  p: UnicastParams = {},
): Result<{ config: IpcpConfig; layer: UnicastLayer }> {
  const config = defaultLayerConfig(name);
  config.layerInfo.dirHashAlgo = DIR_HASH_ALGO[hash];
  const u = config.unicast!;
  const ls = u.dt.routing.ls!;
  const dht = u.dir.dht!;
  if (p.addrSize !== undefined) u.dt.addrSize = p.addrSize;
  if (p.eidSize !== undefined) u.dt.eidSize = p.eidSize;
  if (p.maxTtl !== undefined) u.dt.maxTtl = p.maxTtl;
  if (p.routing !== undefined) ls.pol = LS_POLICY[p.routing];
  if (p.lsTRecalc !== undefined) ls.tRecalc = p.lsTRecalc;
  if (p.lsTUpdate !== undefined) ls.tUpdate = p.lsTUpdate;
  if (p.lsTTimeo !== undefined) ls.tTimeo = p.lsTTimeo;
  if (p.dhtAlpha !== undefined) dht.alpha = p.dhtAlpha;
  if (p.dhtK !== undefined) dht.k = p.dhtK;
  if (p.dhtTExpire !== undefined) dht.tExpire = p.dhtTExpire;
  if (p.dhtTRefresh !== undefined) dht.tRefresh = p.dhtTRefresh;
  if (p.dhtTReplicate !== undefined) dht.tReplicate = p.dhtTReplicate;
  if (p.congestion !== undefined) {
    u.congAvoid = p.congestion === "none" ? CONG_NONE : CONG_MB_ECN;
  }
  const checked = checkUnicastConfig(config);
  if (!checked.ok) return err(checked.error);
  return ok({ config, layer: checked.value });
}
