// Trivial RADIUS responder for measuring the load generator's own ceiling: every Access-Request gets a
// correctly signed Access-Accept (Message-Authenticator first, Response Authenticator: the server's own
// encoder) and no policy work, so the generator's verification path runs too.
//   node --import tsx bench/echo-server.ts PORT SECRET      (answers on 127.0.0.1:PORT until SIGTERM)
import { encodeResponse } from '../src/radius/crypto.js';
import { UdpSocket } from '../src/radius/udp-socket.js';
import { CODE, packetLength } from './packet.js';

const secret = Buffer.from(process.argv[3] ?? 'bench-secret');
const none = Buffer.alloc(0);
const sock = await UdpSocket.bind({
  host: '127.0.0.1',
  port: Number(process.argv[2] ?? 0),
  receiveBufferBytes: 4 * 1024 * 1024,
  onMessage: (msg, peer) => {
    if (packetLength(msg) < 0 || (msg[0] !== CODE.AccessRequest && msg[0] !== CODE.StatusServer)) return;
    const reply = encodeResponse({ code: CODE.AccessAccept, identifier: msg[1]!, requestAuthenticator: msg.subarray(4, 20), attributes: none, proxyStates: [], secret, withMessageAuthenticator: true });
    sock.send(reply, peer);
  },
  onSendRefused: () => undefined,
});
process.once('SIGTERM', () => {
  sock.close();
  process.exit(0);
});
