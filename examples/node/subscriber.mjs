// Subscribe to a running `aunets run` from Node.js with the `zeromq` package (v6) and print AU events.
//
//   npm install zeromq                     # once, in this folder
//   aunets run 0                           # in one terminal
//   node subscriber.mjs [ENDPOINT] [COUNT] # in another; ENDPOINT defaults to tcp://127.0.0.1:5556
//
// Every message is [topic, JSON payload]; docs/events.md has the schema.
import { Subscriber } from "zeromq";

const endpoint = process.argv[2] ?? "tcp://127.0.0.1:5556";
const count = Number(process.argv[3] ?? 0); // 0: never stop

const sock = new Subscriber();
sock.connect(endpoint);
sock.subscribe("au.event");
sock.subscribe("au.frame");

let received = 0;
for await (const [topic, payload] of sock) {
  const msg = JSON.parse(payload.toString());
  received += 1;
  if (topic.toString() === "au.event") {
    console.log(`event ${msg.au} ${msg.type} track ${msg.track_id} frame ${msg.frame}`);
  } else if (!msg.no_face) {
    console.log(`frame ${msg.frame} track ${msg.track_id} AU12 ${msg.smoothed.AU12.toFixed(2)} state ${msg.state.AU12}`);
  } else {
    console.log(`frame ${msg.frame} no face`);
  }
  if (count && received >= count) break;
}
sock.close();
console.log(`${received} messages`);
