/**
 * Trivial RADIUS responder for measuring the load generator's own ceiling: every Access-Request gets a
 * correctly signed Access-Accept (Message-Authenticator first, Response Authenticator) and no policy work,
 * so the generator's verification path runs too.
 *   node --import tsx bench/echo-server.ts PORT SECRET      (answers on 127.0.0.1:PORT until SIGTERM)
 */
import { hmacMd5Key } from '../src/radius/md5.js';
import { UdpSocket } from '../src/radius/udp-socket.js';
import { CODE, packetLength, writeSignedReply } from './packet.js';

const secret = Buffer.from(process.argv[3] ?? 'bench-secret');
const maKey = hmacMd5Key(secret);
const out = Buffer.allocUnsafe(38); // UdpSocket.send copies it into the batch being sent
const sock = await UdpSocket.bind({
  host: '127.0.0.1',
  port: Number(process.argv[2] ?? 0),
  receiveBufferBytes: 4 * 1024 * 1024,
  onMessage: (msg, peer) => {
    if (packetLength(msg) < 0 || (msg[0] !== CODE.AccessRequest && msg[0] !== CODE.StatusServer)) return;
    sock.send(out.subarray(0, writeSignedReply(out, CODE.AccessAccept, msg[1]!, msg, 4, secret, maKey)), peer);
  },
  onSendRefused: () => undefined,
});
process.once('SIGTERM', () => {
  sock.close();
  process.exit(0);
});
