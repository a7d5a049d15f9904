import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
} from "../../tests/assert.ts";
import { connectCtrl, CtrlConn } from "./ctrl.ts";
import { OuroborosError } from "../util/errors.ts";

/** A server and a client control connection over a Unix socket in a temporary directory. */
async function pair(
  handlers: ConstructorParameters<typeof CtrlConn>[1],
  problems: string[] = [],
): Promise<
  {
    client: CtrlConn;
    server: Promise<CtrlConn>;
    raw: () => Promise<Deno.UnixConn>;
    close: () => Promise<void>;
  }
> {
  const dir = await Deno.makeTempDir({ prefix: "o7s-ctrl-" });
  const path = `${dir}/s.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const conns: CtrlConn[] = [];
  const raws: Deno.UnixConn[] = [];
  const server = (async () => {
    const c = new CtrlConn(await listener.accept(), handlers, {
      onProblem: (m) => problems.push(m),
    });
    conns.push(c);
    return c;
  })();
  const client = await connectCtrl(path);
  conns.push(client);
  await server;
  return {
    client,
    server,
    raw: async () => {
      const accepted = listener.accept().then((c) => {
        const s = new CtrlConn(c, handlers, {
          onProblem: (m) => problems.push(m),
        });
        conns.push(s);
      });
      const r = await Deno.connect({ transport: "unix", path });
      raws.push(r);
      await accepted;
      return r;
    },
    close: async () => {
      for (const r of raws) {
        try {
          r.close();
        } catch { /* closed */ }
      }
      for (const c of conns) c.close();
      await Promise.all(conns.map((c) => c.done));
      listener.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("requests get typed replies; handler errors come back with their code and errno", async () => {
  const p = await pair({
    "hello": (h) => ({ irmdPid: h.pid }),
    "irm.name.destroy": (r) => {
      throw new OuroborosError(
        "not_found",
        `Name ${r.name} does not exist.`,
        -2,
      );
    },
  });
  try {
    assertEquals(await p.client.request("hello", { role: "tool", pid: 42 }), {
      irmdPid: 42,
    });
    const e = await assertRejects(() =>
      p.client.request("irm.name.destroy", { name: "x" })
    );
    assertEquals((e as OuroborosError).code, "not_found");
    assertEquals((e as OuroborosError).errno, -2);
    // A method this side does not serve is refused, not ignored.
    await assertRejects(
      () => p.client.request("irm.name.list", {}),
      /not served here/,
    );
    // An invalid body is refused before the handler sees it.
    await assertRejects(
      // @ts-expect-error: deliberately malformed
      () => p.client.request("hello", { role: "nobody", pid: 1 }),
      /expected "app" or "ipcp" or "tool"/,
    );
  } finally {
    await p.close();
  }
});

Deno.test("a request times out; closing fails what is pending", async () => {
  let release: () => void = () => {};
  const p = await pair({
    "hello": () => new Promise((r) => release = () => r({ irmdPid: 1 })),
  });
  try {
    await assertRejects(
      () => p.client.request("hello", { role: "tool", pid: 1 }, 50),
      /within 50 ms/,
    );
    const pending = p.client.request("hello", { role: "tool", pid: 1 });
    p.client.close();
    await assertRejects(() => pending, /closed/);
    release();
  } finally {
    await p.close();
  }
});

Deno.test("timeouts: answered requests never time out; a shorter one after a longer one fires first", async () => {
  let hang = false;
  const releases: (() => void)[] = [];
  const p = await pair({
    "hello": (h) =>
      hang
        ? new Promise((r) => releases.push(() => r({ irmdPid: h.pid })))
        : { irmdPid: h.pid },
  });
  try {
    // Answered well within their (shared) timeout: none fires later.
    for (let i = 1; i <= 20; i++) {
      assertEquals(
        await p.client.request("hello", { role: "tool", pid: i }, 80),
        { irmdPid: i },
      );
    }
    hang = true;
    const t0 = performance.now();
    const at = (e: unknown) => ({ e, ms: performance.now() - t0 });
    const long = p.client.request("hello", { role: "tool", pid: 1 }, 300)
      .catch(at);
    const short = p.client.request("hello", { role: "tool", pid: 2 }, 60)
      .catch(at);
    const s = await short;
    assertMatch(String((s as { e: unknown }).e), /within 60 ms/);
    const sMs = (s as { ms: number }).ms;
    assert(sMs >= 59 && sMs < 250, `the 60 ms timeout fired at ${sMs} ms`);
    const l = await long;
    assertMatch(String((l as { e: unknown }).e), /within 300 ms/);
    assert((l as { ms: number }).ms >= 299, "the 300 ms timeout fired early");
    for (const r of releases) r();
  } finally {
    await p.close();
  }
});

Deno.test("garbage gets an error reply and the connection serves on; an oversized frame closes it", async () => {
  const problems: string[] = [];
  const p = await pair({ "hello": (h) => ({ irmdPid: h.pid }) }, problems);
  try {
    const raw = await p.raw();
    const send = async (text: string, len?: number) => {
      const b = new TextEncoder().encode(text);
      const f = new Uint8Array(4 + b.length);
      new DataView(f.buffer).setUint32(0, len ?? b.length);
      f.set(b, 4);
      await raw.write(f);
    };
    const readReply = async () => {
      const buf = new Uint8Array(4096);
      const n = await raw.read(buf);
      return n === null ? "" : new TextDecoder().decode(buf.subarray(4, n));
    };
    await send("not json");
    assertMatch(await readReply(), /"code":"invalid"/);
    await send(
      JSON.stringify({ i: 9, m: "hello", b: { role: "tool", pid: 5 } }),
    );
    assertEquals(JSON.parse(await readReply()), { i: 9, r: { irmdPid: 5 } });
    await send("x", 0x7fff_ffff);
    assertMatch(await readReply(), /too_large/);
    assertEquals(await raw.read(new Uint8Array(16)), null);
    assertMatch(problems.join("\n"), /oversized control message/);
    // The other connection is untouched.
    assertEquals(await p.client.request("hello", { role: "tool", pid: 3 }), {
      irmdPid: 3,
    });
  } finally {
    await p.close();
  }
});
