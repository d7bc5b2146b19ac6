// The batched UDP socket (native/udp_batch.c + src/radius/udp-socket.ts) over real loopback sockets:
// bursts larger than one batch, replies to the right peer, IPv6, oversize datagrams, sends after close.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { Peer, UdpSocket, type UdpSocketOptions } from '../src/radius/udp-socket.js';

const noRefusals = () => assert.fail('the kernel refused a reply');

/** Our socket on a free port, closed after the test. */
async function listen(t: TestContext, onMessage: UdpSocketOptions['onMessage'], o: Partial<Pick<UdpSocketOptions, 'host' | 'receiveBufferBytes' | 'onSendRefused'>> = {}): Promise<UdpSocket> {
  const socket = await UdpSocket.bind({ host: '127.0.0.1', port: 0, receiveBufferBytes: 0, onSendRefused: noRefusals, ...o, onMessage });
  t.after(() => socket.close());
  return socket;
}

/** A node:dgram peer, closed after the test. */
async function client(t: TestContext, type: 'udp4' | 'udp6', host: string): Promise<Socket> {
  const socket = createSocket(type);
  socket.bind(0, host);
  await once(socket, 'listening');
  t.after(() => socket.close());
  return socket;
}

function collect(socket: Socket, count: number): Promise<Buffer[]> {
  const got: Buffer[] = [];
  return new Promise((resolve) => {
    socket.on('message', (msg) => {
      got.push(msg);
      if (got.length === count) resolve(got);
    });
  });
}

test('a burst of 3 x 150 datagrams (several batches) is echoed, each reply to its own sender', async (t) => {
  const echo = await listen(t, (msg, peer) => echo.send(msg, peer), { receiveBufferBytes: 1 << 20 });
  assert.ok(echo.port > 0);
  const senders = await Promise.all([1, 2, 3].map(() => client(t, 'udp4', '127.0.0.1')));
  const replies = senders.map((s) => collect(s, 150));
  senders.forEach((s, who) => {
    for (let i = 0; i < 150; i++) s.send(Buffer.from(`${who}:${i}:${'x'.repeat(i)}`), echo.port, '127.0.0.1');
  });
  const got = await Promise.all(replies);
  got.forEach((msgs, who) => {
    const texts = msgs.map((m) => m.toString()).sort();
    const sent = Array.from({ length: 150 }, (_, i) => `${who}:${i}:${'x'.repeat(i)}`).sort();
    assert.deepEqual(texts, sent);
  });
});

test('the peer carries the sender address and port; a reply queued later (timer) still leaves', async (t) => {
  const seen: Peer[] = [];
  const echo = await listen(t, (msg, peer) => {
    seen.push(peer);
    setTimeout(() => echo.send(Buffer.concat([Buffer.from('late:'), msg]), peer), 5);
  });
  const sender = await client(t, 'udp4', '127.0.0.2');
  const reply = collect(sender, 1);
  sender.send('hello', echo.port, '127.0.0.1');
  assert.equal((await reply)[0]!.toString(), 'late:hello');
  assert.equal(seen[0]!.address, '127.0.0.2');
  assert.equal(seen[0]!.port, sender.address().port);
  assert.equal(seen[0]!.family, 4);
});

test('IPv6: [::1] receives and replies', async (t) => {
  const echo = await listen(t, (msg, peer) => echo.send(msg, peer), { host: '::1' });
  const sender = await client(t, 'udp6', '::1');
  const reply = collect(sender, 1);
  sender.send('six', echo.port, '::1');
  assert.equal((await reply)[0]!.toString(), 'six');
});

test('a datagram longer than 4096 octets arrives cut to 4096 (RFC 2865 §3: octets past Length are padding)', async (t) => {
  const lengths: number[] = [];
  let got: () => void;
  const arrived = new Promise<void>((r) => (got = r));
  const sink = await listen(t, (msg) => {
    lengths.push(msg.length);
    if (lengths.length === 2) got();
  });
  const sender = await client(t, 'udp4', '127.0.0.1');
  sender.send(Buffer.alloc(6000, 1), sink.port, '127.0.0.1');
  sender.send(Buffer.alloc(20, 2), sink.port, '127.0.0.1');
  await arrived;
  assert.deepEqual(lengths, [4096, 20]);
});

test('a reply the kernel refuses (port 0) is counted, and the other replies of the batch still leave', async (t) => {
  const refused: number[] = [];
  const echo = await listen(
    t,
    (msg, peer) => {
      echo.send(msg, Peer.ipv4('127.0.0.1', 0));
      echo.send(msg, peer);
    },
    { onSendRefused: (count) => refused.push(count) },
  );
  const sender = await client(t, 'udp4', '127.0.0.1');
  const reply = collect(sender, 1);
  sender.send('still answered', echo.port, '127.0.0.1');
  assert.equal((await reply)[0]!.toString(), 'still answered');
  assert.deepEqual(refused, [1]);
});

test('a port in use is refused with EADDRINUSE; a datagram over 4096 octets is refused; send after close is ignored', async () => {
  const first = await UdpSocket.bind({ host: '127.0.0.1', port: 0, receiveBufferBytes: 0, onMessage: () => undefined, onSendRefused: noRefusals });
  await assert.rejects(
    UdpSocket.bind({ host: '127.0.0.1', port: first.port, receiveBufferBytes: 0, onMessage: () => undefined, onSendRefused: noRefusals }),
    (err: Error & { code?: string }) => err.code === 'EADDRINUSE' && /bind EADDRINUSE/.test(err.message),
  );
  assert.throws(() => first.send(Buffer.alloc(4097), Peer.ipv4('127.0.0.1', 9)), RangeError);
  first.close();
  first.send(Buffer.from('x'), Peer.ipv4('127.0.0.1', 9));
  first.close();
});
