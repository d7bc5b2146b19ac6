/**
 * Trivial RADIUS responder used to measure the load generator's own ceiling: it answers every
 * Access-Request with a correctly signed Access-Accept (Message-Authenticator first, Response
 * Authenticator), doing no policy work, so the generator's verification path is exercised too.
 *
 *   node bench/echo-server.ts --port 18120 --secret s     (prints {"msg":"listening",...})
 * Stops on SIGTERM/SIGINT and prints {"msg":"stopped","packets":N}.
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { hmacMd5Key } from '../src/radius/md5.js';
import { UdpSocket } from '../src/radius/udp-socket.js';
import { CODE, packetLength, writeSignedReply } from './packet.js';

export async function startEchoServer(host: string, port: number, secretText: string): Promise<{ port: number; close: () => Promise<number> }> {
  const secret = Buffer.from(secretText);
  const maKey = hmacMd5Key(secret);
  let packets = 0;
  // One reply buffer: UdpSocket.send copies it into the batch being sent.
  const out = Buffer.allocUnsafe(38);
  const sock = await UdpSocket.bind({
    host,
    port,
    receiveBufferBytes: 4 * 1024 * 1024,
    onMessage: (msg, peer) => {
      if (packetLength(msg) < 0 || (msg[0] !== CODE.AccessRequest && msg[0] !== CODE.StatusServer)) return;
      packets++;
      const len = writeSignedReply(out, CODE.AccessAccept, msg[1]!, msg, 4, undefined, secret, maKey);
      sock.send(out.subarray(0, len), peer);
    },
    onSendRefused: () => undefined,
  });
  return {
    port: sock.port,
    close: async () => {
      sock.close();
      return packets;
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { host: { type: 'string' }, port: { type: 'string' }, secret: { type: 'string' } } });
  const srv = await startEchoServer(values.host ?? '127.0.0.1', Number(values.port ?? 0), values.secret ?? 'bench-secret');
  console.log(JSON.stringify({ msg: 'listening', port: srv.port, pid: process.pid }));
  const stop = async () => {
    const packets = await srv.close();
    console.log(JSON.stringify({ msg: 'stopped', packets }));
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
