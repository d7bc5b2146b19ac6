/**
 * The approving phone and VPN of bench/push.ts's paced phase, as a process of its own: it sends the
 * paced users' Access-Requests (when the bench says so), later posts their approvals at a steady rate
 * and times each Access-Accept. It holds nothing else, so its own garbage collections are short and
 * rare, and the bench process, which holds the other requests, sits idle while it measures: what is
 * left in the numbers is the server.
 *
 * Plain JavaScript (no tsx loader thread beside it on the measuring core). Talks to the bench over
 * IPC with advanced serialization:
 *   in:  ['init', {port, httpPort, requests: Buffer[], tokens: string[]}]   -> out ['ready']
 *        ['send', k]                                                        (Access-Request k, again if told)
 *        ['approve', {rate, ids: string[], signatures: string[], lingerMs, expectReplies?}] -> out ['done', Result]
 * Result: {timeOrigin, postedAt, httpAt, acceptedAt: Float64Array (performance.now(), 0 = never), replies: (Buffer|null)[],
 *          duplicates, failures: string[]}; replies are checked by the bench, which knows the secret.
 */
import { createSocket } from 'node:dgram';
import { Agent, request } from 'node:http';

const PER_SOCKET = 250;
let run;

process.on('message', ([kind, body]) => {
  if (kind === 'init') void init(body).then(() => process.send(['ready']));
  else if (kind === 'send') run.send(body);
  else if (kind === 'approve') run.approve(body);
});
process.once('disconnect', () => process.exit(1));

async function init({ port, httpPort, requests, tokens }) {
  const n = requests.length;
  const acceptedAt = new Float64Array(n);
  const postedAt = new Float64Array(n);
  const httpAt = new Float64Array(n);
  const replies = new Array(n).fill(null);
  const failures = [];
  let duplicates = 0;
  let received = 0;
  let answered = 0;
  /** Set while approving: reports once every answer (and, unless told not to, every reply) is in. */
  let check = () => {};

  const sockets = [];
  for (let s = 0; s * PER_SOCKET < n; s++) {
    const socket = createSocket('udp4');
    await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
    socket.setRecvBufferSize(4 * 1024 * 1024);
    socket.on('message', (msg) => {
      const at = performance.now();
      const k = s * PER_SOCKET + msg[1];
      if (k >= n) return;
      if (replies[k]) {
        duplicates++;
        return;
      }
      replies[k] = msg;
      acceptedAt[k] = at;
      received++;
      check();
    });
    sockets.push(socket);
  }

  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  function post(k, id, signature) {
    const payload = `{"decision":"approve","signature":"${signature}"}`;
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port: httpPort,
        method: 'POST',
        path: `/api/v1/requests/${id}/answer`,
        headers: { authorization: `Bearer ${tokens[k]}`, 'content-type': 'application/json', 'content-length': payload.length },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d));
        res.on('end', () => {
          httpAt[k] = performance.now();
          answered++;
          if (res.statusCode !== 200 || !text.includes('"approved"')) failures.push(`user ${k}: answer ${res.statusCode} ${text}`);
          check();
        });
      },
    );
    req.on('error', (err) => failures.push(`user ${k}: ${err.message}`));
    postedAt[k] = performance.now();
    req.end(payload);
  }

  run = {
    send(k) {
      sockets[Math.floor(k / PER_SOCKET)].send(requests[k], port, '127.0.0.1');
    },
    /**
     * One answer every 1000/rate ms on a timer (no busy wait: a spinning loop would delay the replies
     * it times). expectReplies false: only the HTTP answers count (a server that sends no Accept).
     */
    approve({ rate, ids, signatures, lingerMs, expectReplies = true }) {
      const interval = 1000 / rate;
      const start = performance.now() + 5;
      let k = 0;
      let giveUp;
      const done = () => {
        check = () => {};
        clearTimeout(giveUp);
        agent.destroy();
        for (const s of sockets) s.close();
        process.send(['done', { timeOrigin: performance.timeOrigin, postedAt, httpAt, acceptedAt, replies, duplicates, failures }]);
      };
      const tick = () => {
        const now = performance.now();
        while (k < n && start + k * interval <= now) post(k, ids[k], signatures[k++]);
        if (k < n) setTimeout(tick, Math.max(0, start + k * interval - performance.now()));
        else {
          check = () => answered === n && (received === n || !expectReplies) && done();
          giveUp = setTimeout(done, lingerMs);
          check();
        }
      };
      tick();
    },
  };
}
