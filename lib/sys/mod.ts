/**
 * The system-call layer: typed libc calls for the data path (sockets,
 * batched datagrams, poll, epoll, eventfd), over plain descriptors and
 * Uint8Array buffers. Importing it opens libc through FFI (--allow-ffi).
 *
 *   constants.ts  Linux numbers (AF_*, SOCK_*, SO_*, MSG_*, POLL*, EPOLL*, E*)
 *   layout.ts     C struct layouts for x86_64 and aarch64, pure encoders
 *   sockaddr.ts   socket addresses: text forms and structs, pure
 *   result.ts     SysResult: a value, an errno error, or "would block"
 *   sys.ts        the calls
 *
 * libc.ts, the raw FFI bindings, is not exported: only lib/sys/ touches
 * pointers.
 */
export * from "./constants.ts";
export * from "./layout.ts";
export * from "./result.ts";
export * from "./sockaddr.ts";
export * from "./sys.ts";
