/**
 * The VPN and the approving phones of bench/push.ts, as a process of its own: it holds the users'
 * Access-Requests (sends each when the bench says so), later posts their approvals (paced at a steady
 * rate, or all at once over a few keep-alive connections) and times each Access-Accept. It holds
 * nothing else, so its own garbage collections are short and rare, and the bench process sits idle
 * while it measures: what is left in the numbers is the server.
 *
 * Plain JavaScript (no tsx loader thread beside it on the measuring core). Talks to the bench over
 * IPC with advanced serialization:
 *   in:  ['init', {port, httpPort, requests: Buffer[], tokens: string[]}]   -> out ['ready']
 *        ['send', k]                                                        (Access-Request k, again if told)
 *        ['approve', {from, to, rate, connections, ids, signatures, lingerMs, expectReplies}] -> out ['done', Result]
 *          rate 0: all at once over `connections`; expectReplies false: only the HTTP answers count.
 * Result: {postedAt, httpAt, acceptedAt: Float64Array (performance.now() of this process, 0 = never),
 *          replies: (Buffer|null)[], duplicates, failures: string[]}; the bench checks the replies (it knows the secret).
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
  run?.close();
  const n = requests.length;
  const acceptedAt = new Float64Array(n);
  const postedAt = new Float64Array(n);
  const httpAt = new Float64Array(n);
  const replies = new Array(n).fill(null);
  let failures = [];
  let duplicates = 0;
  /** Set while approving: counts what arrives for the users being approved, reports once all is in. */
  let onEvent = () => {};

  const sockets = [];
  for (let s = 0; s * PER_SOCKET < n; s++) {
    const socket = createSocket('udp4');
    await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
    socket.setRecvBufferSize(4 * 1024 * 1024);
    socket.on('message', (msg) => {
      const at = performance.now();
      const k = s * PER_SOCKET + msg[1];
      if (k >= n) return;
      if (replies[k]) return void duplicates++;
      replies[k] = msg;
      acceptedAt[k] = at;
      onEvent(k, 'reply');
    });
    sockets.push(socket);
  }

  function post(agent, k, id, signature) {
    const payload = `{"decision":"approve","signature":"${signature}"}`;
    const req = request(
      {
        agent, host: '127.0.0.1', port: httpPort, method: 'POST', path: `/api/v1/requests/${id}/answer`,
        headers: { authorization: `Bearer ${tokens[k]}`, 'content-type': 'application/json', 'content-length': payload.length },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d));
        res.on('end', () => {
          httpAt[k] = performance.now();
          if (res.statusCode !== 200 || !text.includes('"approved"')) failures.push(`user ${k}: answer ${res.statusCode} ${text}`);
          onEvent(k, 'http');
        });
      },
    );
    req.on('error', (err) => {
      failures.push(`user ${k}: ${err.message}`);
      onEvent(k, 'http');
    });
    postedAt[k] = performance.now();
    req.end(payload);
  }

  run = {
    close: () => sockets.forEach((s) => s.close()),
    send: (k) => sockets[Math.floor(k / PER_SOCKET)].send(requests[k], port, '127.0.0.1'),
    /** Paced: one answer every 1000/rate ms on a timer (a busy wait would delay the replies it times). */
    approve({ from, to, rate, connections, ids, signatures, lingerMs, expectReplies }) {
      const agent = new Agent({ keepAlive: true, maxSockets: connections });
      let [answered, received] = [0, replies.slice(from, to).filter(Boolean).length];
      let giveUp;
      const done = () => {
        onEvent = () => {};
        clearTimeout(giveUp);
        agent.destroy();
        process.send(['done', { postedAt, httpAt, acceptedAt, replies, duplicates, failures }]);
        failures = [];
      };
      const check = () => answered === to - from && (received === to - from || !expectReplies) && done();
      let k = from;
      onEvent = (j, what) => {
        if (j < from || j >= to) return;
        if (what === 'http') answered++;
        else received++;
        // All at once: `connections` answers in flight, the next one leaves as one is answered.
        if (what === 'http' && rate === 0 && k < to) post(agent, k, ids[k], signatures[k++]);
        if (k === to) check();
      };
      const start = performance.now() + 5;
      const tick = () => {
        const now = performance.now();
        while (k < to && (rate === 0 ? k - from < connections : start + (k - from) * (1000 / rate) <= now)) post(agent, k, ids[k], signatures[k++]);
        if (rate === 0 && k < to) return void (giveUp = setTimeout(done, 60_000)); // the rest leave from onEvent
        if (k < to) setTimeout(tick, Math.max(0, start + (k - from) * (1000 / rate) - performance.now()));
        else {
          giveUp = setTimeout(done, lingerMs);
          check();
        }
      };
      tick();
    },
  };
}
