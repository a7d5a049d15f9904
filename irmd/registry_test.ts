import { assertEquals, assertThrows } from "../tests/assert.ts";
import { basename, Registry } from "./registry.ts";

function tutorial(): Registry {
  const r = new Registry();
  r.createName("oping-server", "round-robin");
  r.createName("oping-server2", "spill");
  r.bindProgram("/usr/bin/oping", "oping-server", ["--listen"]);
  r.bindProgram("/usr/bin/oping", "oping-server2", ["--listen"]);
  return r;
}

Deno.test("a process inherits the names of its program, newest name first", () => {
  const r = tutorial();
  const p = r.addProcess(100, "oping");
  assertEquals([...p.names.keys()], ["oping-server2", "oping-server"]);
  assertEquals(r.addProcess(101, "other").names.size, 0);
  assertEquals(basename("/usr/bin/oping"), "oping");
});

Deno.test("round-robin alternates between two accepting servers", () => {
  const r = tutorial();
  r.addProcess(1, "oping");
  r.addProcess(2, "oping");
  r.setAccepting(1, true);
  r.setAccepting(2, true);
  const got: number[] = [];
  for (let i = 0; i < 6; i++) {
    const p = r.choose("oping-server")!;
    got.push(p.pid);
    r.setAccepting(p.pid, false);
    r.setAccepting(p.pid, true); // re-accepts at the back
  }
  assertEquals(got, [1, 2, 1, 2, 1, 2]);
});

Deno.test("spill keeps giving flows to the most recent accepter", () => {
  const r = tutorial();
  r.addProcess(1, "oping");
  r.addProcess(2, "oping");
  r.setAccepting(1, true);
  r.setAccepting(2, true);
  const got: number[] = [];
  for (let i = 0; i < 6; i++) {
    const p = r.choose("oping-server2")!;
    got.push(p.pid);
    r.setAccepting(p.pid, false);
    r.setAccepting(p.pid, true);
  }
  assertEquals(got, [2, 2, 2, 2, 2, 2]);
});

Deno.test("a directly bound process takes the name's flows", () => {
  const r = tutorial();
  r.addProcess(1, "oping");
  r.addProcess(2, "oping");
  r.setAccepting(1, true);
  r.setAccepting(2, true);
  r.bindProcess(1, "oping-server2");
  assertEquals(r.choose("oping-server2")?.pid, 1);
  r.setAccepting(1, false);
  // Bound but busy: nobody else gets it.
  assertEquals(r.choose("oping-server2"), undefined);
  r.unbindProcess(1, "oping-server2");
  assertEquals(r.choose("oping-server2")?.pid, 2);
});

Deno.test("no accepting process, no choice; removed processes are never chosen", () => {
  const r = tutorial();
  r.addProcess(1, "oping");
  assertEquals(r.choose("oping-server"), undefined);
  r.setAccepting(1, true);
  r.removeProcess(1);
  assertEquals(r.choose("oping-server"), undefined);
});

Deno.test("binding a program binds its running processes; unbinding undoes it", () => {
  const r = new Registry();
  r.createName("x", "spill");
  const p = r.addProcess(5, "srv");
  assertEquals(r.bindProgram("/opt/srv", "x", undefined).map((q) => q.pid), [
    5,
  ]);
  assertEquals(p.names.get("x"), "inherited");
  assertEquals(r.autostart("x"), []);
  r.unbindProgram("/opt/srv", "x");
  assertEquals(p.names.has("x"), false);
  assertThrows(() => r.unbindProgram("/opt/srv", "x"), /not bound/);
});

Deno.test("names: duplicates, missing names and autostart programs", () => {
  const r = tutorial();
  assertThrows(() => r.createName("oping-server", "spill"), /already exists/);
  assertThrows(() => r.getName("nope"), /does not exist/);
  assertEquals(r.autostart("oping-server"), [["/usr/bin/oping", ["--listen"]]]);
  assertEquals(r.ensureName("new").lb, "spill");
  r.destroyName("new");
  assertThrows(() => r.bindProcess(99, "oping-server"), /not known/);
});
