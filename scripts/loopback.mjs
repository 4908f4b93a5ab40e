// Loaded with `node --import` by scripts/certify_portkey.py: a Node server that names no address (Portkey's
// start-server.js calls serve({fetch, port}) and so listens on every interface) listens on 127.0.0.1 instead.
// An address the server names itself is kept. Nothing else of the gateway is touched.
import net from "node:net";

const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (args.length === 1 || args[1] === undefined || args[1] === null) {
      args.splice(1, 1, "127.0.0.1");
    } else if (typeof args[1] === "function") {
      args.splice(1, 0, "127.0.0.1");
    }
  } else if (first && typeof first === "object" && first.path === undefined && !first.host) {
    args[0] = { ...first, host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};
