/** POSIX path handling for configuration files (no Node compatibility layer needed). */

export function isAbsolute(p: string): boolean {
  return p.startsWith("/");
}

/** Resolves `.` and `..` and repeated slashes; keeps a leading slash. */
export function normalize(p: string): string {
  const abs = isAbsolute(p);
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!abs) out.push("..");
    } else out.push(part);
  }
  const s = out.join("/");
  return abs ? `/${s}` : s === "" ? "." : s;
}

export function join(...parts: string[]): string {
  return normalize(parts.filter((p) => p !== "").join("/"));
}

export function dirname(p: string): string {
  const n = normalize(p);
  const i = n.lastIndexOf("/");
  if (i < 0) return ".";
  return i === 0 ? "/" : n.slice(0, i);
}

/** An absolute path: `p` against the current directory. */
export function resolve(p: string): string {
  return isAbsolute(p) ? normalize(p) : join(Deno.cwd(), p);
}
