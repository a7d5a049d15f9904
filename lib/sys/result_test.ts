/** Results of system calls and the EINTR loop (no FFI: errno is simulated). */
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { EADDRINUSE, EAGAIN, EINTR, EWOULDBLOCK } from "./constants.ts";
import {
  describe,
  eintrRetryCount,
  fromErrno,
  invalid,
  runSys,
  SysCallError,
  unwrap,
} from "./result.ts";

Deno.test("result: an errno becomes a typed error", () => {
  assertEquals(fromErrno("bind", EADDRINUSE), {
    ok: false,
    wouldBlock: false,
    errno: 98,
    name: "EADDRINUSE",
    call: "bind",
  });
});

Deno.test("result: EAGAIN is 'would block', one object per call name", () => {
  const a = fromErrno("recvmmsg", EAGAIN);
  assertEquals(a, {
    ok: false,
    wouldBlock: true,
    errno: 11,
    name: "EAGAIN",
    call: "recvmmsg",
  });
  assert(fromErrno("recvmmsg", EWOULDBLOCK) === a);
  assert(fromErrno("read", EAGAIN) !== a);
  assert(Object.isFrozen(a));
});

/** A call that fails with each errno of `errnos` in turn, then returns 7. */
function scripted(errnos: number[]) {
  let calls = 0;
  let current = 0;
  return {
    f: () => {
      calls++;
      const e = errnos.shift();
      if (e === undefined) return 7;
      current = e;
      return -1;
    },
    errno: () => current,
    calls: () => calls,
  };
}

Deno.test("result: runSys makes the call again after EINTR", () => {
  const s = scripted([EINTR, EINTR]);
  const before = eintrRetryCount();
  assertEquals(runSys("poll", s.f, s.errno), { ok: true, value: 7 });
  assertEquals(s.calls(), 3);
  assertEquals(eintrRetryCount() - before, 2);
});

Deno.test("result: runSys stops at any other errno", () => {
  const s = scripted([EINTR, EAGAIN, EINTR]);
  const r = runSys("recvfrom", s.f, s.errno);
  assert(!r.ok && r.wouldBlock);
  assertEquals(s.calls(), 2);
  const t = scripted([EADDRINUSE]);
  const b = runSys("bind", t.f, t.errno);
  assert(!b.ok && !b.wouldBlock && b.name === "EADDRINUSE");
  assertEquals(t.calls(), 1);
});

Deno.test("result: values other than -1 are results, not errors", () => {
  assertEquals(runSys("x", () => 0, () => EINTR), { ok: true, value: 0 });
  assertEquals(runSys("x", () => -2, () => EINTR), { ok: true, value: -2 });
});

Deno.test("result: describe and unwrap", () => {
  assertEquals(
    describe(fromErrno("bind", EADDRINUSE)),
    "bind: EADDRINUSE (errno 98)",
  );
  assertEquals(
    describe(invalid("sockaddr", "bad port")),
    "sockaddr: EINVAL (errno 22): bad port",
  );
  assertEquals(unwrap({ ok: true, value: 3 }), 3);
  const e = assertThrows(
    () => unwrap(fromErrno("connect", 111)),
    /connect: ECONNREFUSED/,
  );
  assert(e instanceof SysCallError);
  assertEquals([e.errno, e.errnoName, e.call], [
    111,
    "ECONNREFUSED",
    "connect",
  ]);
});
