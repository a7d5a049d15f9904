/**
 * The staging buffer of a data path whose packets go from one
 * application to another in the same IPCP (the local and unicast IPCPs):
 * a pass copies each packet frame once into it, hands the views to the
 * applications' writevs, and reuses it only after those writes. The read
 * buffer, reused for the next connection, cannot be the one handed on.
 */

/** Frames staged for delivery before they are written, at most. */
export const STAGE_FRAMES = 64;
/** Bytes of the staging buffer (at least two of the largest frames). */
const STAGE_BYTES = 256 * 1024;

export class Staging {
  readonly buf: Uint8Array;
  #at = 0;
  #frames = 0;

  /**
   * `frameBytes`: the largest frame staged; `write`: writes what was handed
   * on (after it, the buffer is free again).
   */
  constructor(frameBytes: number, private readonly write: () => void) {
    this.buf = new Uint8Array(Math.max(STAGE_BYTES, 2 * frameBytes));
  }

  /**
   * Where the next `need` bytes may be staged: the staged frames are
   * written first when the buffer or the frame count is full.
   */
  reserve(need: number): number {
    if (this.#frames >= STAGE_FRAMES || this.#at + need > this.buf.length) {
      this.flush();
    }
    return this.#at;
  }

  /** The bytes up to `end` hold one more frame handed on. */
  commit(end: number): void {
    this.#at = end;
    this.#frames++;
  }

  /** Writes what is staged; the buffer is free again after it. */
  flush(): void {
    if (this.#frames === 0) return;
    this.write();
    this.#at = 0;
    this.#frames = 0;
  }
}
