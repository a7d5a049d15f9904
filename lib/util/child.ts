/**
 * A child process whose output is collected line by line, with waits on
 * lines and on exit that always have a deadline. Used by the demo, the
 * benchmark and the multi-process tests.
 */

/** A running process whose output lines are collected. */
export class Proc {
  readonly lines: string[] = [];
  readonly out: string[] = [];
  readonly err: string[] = [];
  #waiters: { re: RegExp; from: number; resolve: (l: string) => void }[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  #reading: Promise<void>;

  constructor(
    readonly label: string,
    cmd: string[],
    env: Record<string, string>,
  ) {
    const [exe, ...args] = cmd;
    this.#child = new Deno.Command(exe!, {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reading = Promise.all([
      this.#collect(this.#child.stdout, this.out),
      this.#collect(this.#child.stderr, this.err),
    ]).then(() => {});
    this.status = this.#child.status;
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #collect(
    stream: ReadableStream<Uint8Array>,
    sink: string[],
  ): Promise<void> {
    const dec = new TextDecoder();
    let rest = "";
    for await (const chunk of stream) {
      rest += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = rest.indexOf("\n")) >= 0) {
        this.#line(rest.slice(0, nl), sink);
        rest = rest.slice(nl + 1);
      }
    }
    if (rest !== "") this.#line(rest, sink);
  }

  #line(line: string, sink: string[]): void {
    sink.push(line);
    this.lines.push(line);
    if (Deno.env.get("O7S_VERBOSE")) {
      console.log(`[${this.label}] ${line}`);
    }
    const idx = this.lines.length - 1;
    this.#waiters = this.#waiters.filter((w) => {
      if (idx >= w.from && w.re.test(line)) {
        w.resolve(line);
        return false;
      }
      return true;
    });
  }

  /** The first line (from line `from` on) that matches, within the deadline. */
  waitFor(re: RegExp, timeoutMs = 10_000, from = 0): Promise<string> {
    const found = this.lines.slice(from).find((l) => re.test(l));
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `${this.label}: no line matching ${re} within ${timeoutMs} ms; output:\n` +
              this.lines.slice(-40).join("\n"),
          ),
        );
      }, timeoutMs);
      const done = (l: string) => {
        clearTimeout(timer);
        resolve(l);
      };
      this.#waiters.push({ re, from, resolve: done });
      void this.status.then(() =>
        this.#reading.then(() => {
          if (this.#waiters.some((w) => w.resolve === done)) {
            clearTimeout(timer);
            this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
            reject(
              new Error(
                `${this.label} exited without a line matching ${re}; output:\n` +
                  this.lines.slice(-40).join("\n"),
              ),
            );
          }
        })
      );
    });
  }

  /** Waits for the exit (with a deadline) and all output. */
  async exit(
    timeoutMs = 15_000,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const st = await Promise.race([
      this.status,
      new Promise<undefined>((r) =>
        timer = setTimeout(() => r(undefined), timeoutMs)
      ),
    ]);
    clearTimeout(timer);
    if (st === undefined) {
      this.kill("SIGKILL");
      await this.status;
      await this.#reading;
      throw new Error(
        `${this.label} did not exit within ${timeoutMs} ms; output:\n${
          this.lines.join("\n")
        }`,
      );
    }
    await this.#reading;
    return {
      code: st.code,
      stdout: this.out.join("\n"),
      stderr: this.err.join("\n"),
    };
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.#child.kill(signal);
    } catch {
      // exited already
    }
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 5000): Promise<Deno.CommandStatus> {
    this.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const st = await Promise.race([
      this.status,
      new Promise<undefined>((r) =>
        timer = setTimeout(() => r(undefined), graceMs)
      ),
    ]);
    clearTimeout(timer);
    if (st === undefined) this.kill("SIGKILL");
    const final = await this.status;
    await this.#reading;
    return final;
  }
}
