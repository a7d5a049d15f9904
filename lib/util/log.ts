/**
 * Logging in the format of the C implementation:
 * `==PID== component(LV): message`, PID zero-padded to five digits.
 *
 * Levels: II (info), WW (warning), EE (error), DB (debug, only when debug
 * logging is on). Colours are used only when the output is a terminal.
 */

export type Level = "II" | "WW" | "EE" | "DB";

export interface LogSink {
  writeSync(p: Uint8Array): number;
  isTerminal(): boolean;
}

interface LogState {
  debug: boolean;
  sink: LogSink;
  colour: boolean;
}

const state: LogState = {
  debug: false,
  sink: Deno.stdout,
  colour: false,
};

const COLOURS: Record<Level, string> = {
  II: "",
  WW: "\x1b[33m",
  EE: "\x1b[31m",
  DB: "\x1b[2m",
};

const encoder = new TextEncoder();

/** Configures logging for the whole process. */
export function setupLogging(opts: { debug?: boolean; sink?: LogSink }): void {
  if (opts.debug !== undefined) state.debug = opts.debug;
  if (opts.sink !== undefined) state.sink = opts.sink;
  let colour = false;
  try {
    colour = state.sink.isTerminal() && !Deno.noColor;
  } catch {
    colour = false;
  }
  state.colour = colour;
}

/** True when debug lines are printed. */
export function debugEnabled(): boolean {
  return state.debug;
}

/** Formats one log line (without colour and newline). */
export function formatLine(
  pid: number,
  component: string,
  level: Level,
  message: string,
): string {
  return `==${
    String(pid).padStart(5, "0")
  }== ${component}(${level}): ${message}`;
}

function emit(component: string, level: Level, message: string): void {
  if (level === "DB" && !state.debug) return;
  let line = formatLine(Deno.pid, component, level, message);
  const colour = COLOURS[level];
  if (state.colour && colour !== "") line = `${colour}${line}\x1b[0m`;
  try {
    const bytes = encoder.encode(line + "\n");
    let off = 0;
    while (off < bytes.length) off += state.sink.writeSync(bytes.subarray(off));
  } catch {
    // A closed or broken output must never take the process down.
  }
}

/** A logger bound to one component name, e.g. `irmd` or `ipcpd/udp`. */
export class Logger {
  constructor(readonly component: string) {}
  info(message: string): void {
    emit(this.component, "II", message);
  }
  warn(message: string): void {
    emit(this.component, "WW", message);
  }
  error(message: string): void {
    emit(this.component, "EE", message);
  }
  debug(message: string): void {
    emit(this.component, "DB", message);
  }
}
