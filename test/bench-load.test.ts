// The bench's load generator (bench/load-generator.ts) against a recording responder in this process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeResponse } from '../src/radius/crypto.js';
import { Attr, Code, decodePacket, findAttribute } from '../src/radius/packet.js';
import { UdpSocket } from '../src/radius/udp-socket.js';
import { runLoad } from '../bench/load-generator.js';

test('a second run starts with the user after the last one the first run sent: a re-run within one TOTP step sends no replay', async () => {
  const secret = 'bench-load-test';
  const names: string[] = [];
  const server = await UdpSocket.bind({
    host: '127.0.0.1',
    port: 0,
    receiveBufferBytes: 1 << 20,
    onMessage: (msg, peer) => {
      const r = decodePacket(msg);
      if (!r.ok || r.packet.code !== Code.AccessRequest) return;
      names.push(findAttribute(r.packet, Attr.UserName)!.toString());
      server.send(encodeResponse({ code: Code.AccessAccept, identifier: r.packet.identifier, requestAuthenticator: r.packet.authenticator, attributes: Buffer.alloc(0), proxyStates: [], secret: Buffer.from(secret), withMessageAuthenticator: true }), peer);
    },
    onSendRefused: () => undefined,
  });
  try {
    // One outstanding request: the responder sees the users in the order they were sent.
    const job = { port: server.port, secret, users: 50_000, concurrency: 1, seconds: 0.5, warmupSeconds: 0 };
    const first = await runLoad(job);
    const sentFirst = names.length;
    const second = await runLoad(job);
    assert.ok(first.accept > 0 && second.accept > 0, 'both runs were answered');
    assert.ok(names.length < 50_000, `${names.length} requests wrapped around the users: make the runs shorter`);
    const [a, b] = [names.slice(0, sentFirst), names.slice(sentFirst)];
    assert.equal(a[0], 'u00000');
    assert.equal(Number(b[0]!.slice(1)), Number(a.at(-1)!.slice(1)) + 1, 'the second run continues where the first stopped');
    assert.equal(new Set(names).size, names.length, 'no user was sent twice');
  } finally {
    server.close();
  }
});
