import { assertEquals } from "../../tests/assert.ts";
import { dirname, isAbsolute, join, normalize, resolve } from "./path.ts";

Deno.test("path helpers behave like POSIX paths", () => {
  assertEquals(normalize("/a//b/./c/../d/"), "/a/b/d");
  assertEquals(normalize("a/../../b"), "../b");
  assertEquals(normalize("./"), ".");
  assertEquals(normalize("/.."), "/");
  assertEquals(join("/etc/ouroboros", "hosts"), "/etc/ouroboros/hosts");
  assertEquals(join("conf", "../x/hosts"), "x/hosts");
  assertEquals(dirname("/etc/ouroboros/tut05.conf"), "/etc/ouroboros");
  assertEquals(dirname("tut05.conf"), ".");
  assertEquals(dirname("/tut05.conf"), "/");
  assertEquals(isAbsolute("/x"), true);
  assertEquals(isAbsolute("x"), false);
  assertEquals(resolve("x/y"), `${Deno.cwd()}/x/y`);
});
