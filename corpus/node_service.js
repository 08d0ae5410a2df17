// A small JSON service and its load, for corpus/capture.py (node, no npm packages).
//
//   node node_service.js server PORT   serve on 127.0.0.1:PORT
//   node node_service.js client PORT   send requests to it until killed
//
// The server keeps up to 20k user documents in a Map (an LRU by re-insertion): GET /user/N
// builds or updates user N's document (nested objects, arrays, strings) and answers it as
// JSON; POST /event appends to a user's event log, trimmed to 50 entries; GET /report
// aggregates over every cached user. The client's rate cycles through idle, steady and burst
// phases, so the heap sees quiet windows, steady allocation and garbage collections.
"use strict";
const http = require("http");

const [mode, portText] = process.argv.slice(2);
const port = Number(portText);
if (!["server", "client"].includes(mode) || !port) {
  console.error("usage: node node_service.js server|client PORT");
  process.exit(2);
}

function server() {
  const users = new Map();
  const MAX_USERS = 20000;
  let requests = 0;

  function user(id) {
    let doc = users.get(id);
    if (doc) {
      users.delete(id);
    } else {
      doc = {
        id,
        name: `user-${id}-${Math.random().toString(36).slice(2)}`,
        created: new Date().toISOString(),
        tags: Array.from({ length: 1 + (id % 7) }, (_, i) => `tag${(id * 31 + i) % 97}`),
        scores: new Array(16).fill(0),
        events: [],
        profile: { country: ["de", "fr", "us", "jp"][id % 4], visits: 0, lastSeen: null },
      };
    }
    doc.profile.visits += 1;
    doc.profile.lastSeen = Date.now();
    doc.scores[requests % 16] += Math.random();
    users.set(id, doc);
    if (users.size > MAX_USERS) users.delete(users.keys().next().value);
    return doc;
  }

  function report() {
    const byCountry = {};
    for (const doc of users.values()) {
      const c = (byCountry[doc.profile.country] ??= { users: 0, visits: 0, score: 0 });
      c.users += 1;
      c.visits += doc.profile.visits;
      c.score += doc.scores.reduce((a, b) => a + b, 0);
    }
    return { users: users.size, requests, byCountry };
  }

  http
    .createServer((req, res) => {
      requests += 1;
      const send = (obj) => {
        const body = JSON.stringify(obj);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(body);
      };
      const m = /^\/user\/(\d+)/.exec(req.url);
      if (req.method === "GET" && m) return send(user(Number(m[1])));
      if (req.method === "GET" && req.url === "/report") return send(report());
      if (req.method === "POST" && req.url === "/event") {
        let text = "";
        req.on("data", (chunk) => (text += chunk));
        req.on("end", () => {
          const event = JSON.parse(text);
          const doc = user(event.user);
          doc.events.push({ at: Date.now(), kind: event.kind, payload: event.payload });
          if (doc.events.length > 50) doc.events.splice(0, doc.events.length - 50);
          send({ ok: true, events: doc.events.length });
        });
        return undefined;
      }
      res.writeHead(404);
      res.end();
      return undefined;
    })
    .listen(port, "127.0.0.1");
}

function client() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  // requests per second in each 2-second phase: idle, light, steady, burst, steady, light
  const phases = [0, 20, 200, 1500, 200, 20];
  const started = Date.now();
  const rate = () => phases[Math.floor((Date.now() - started) / 2000) % phases.length];
  let inflight = 0;

  function one() {
    const id = Math.floor(Math.random() ** 2 * 60000); // skewed: a hot set of users
    const roll = Math.random();
    inflight += 1;
    const done = (res) => {
      res.resume();
      res.on("end", () => (inflight -= 1));
    };
    const fail = () => (inflight -= 1);
    if (roll < 0.6) {
      http.get({ port, host: "127.0.0.1", path: `/user/${id}`, agent }, done).on("error", fail);
    } else if (roll < 0.995) {
      const body = JSON.stringify({
        user: id,
        kind: ["click", "view", "buy"][id % 3],
        payload: { ref: Math.random().toString(36), n: roll },
      });
      const req = http.request(
        { port, host: "127.0.0.1", path: "/event", method: "POST", agent },
        done,
      );
      req.on("error", fail);
      req.end(body);
    } else {
      http.get({ port, host: "127.0.0.1", path: "/report", agent }, done).on("error", fail);
    }
  }

  // every 10 ms send this tick's share of the phase's rate (bounded in-flight requests)
  setInterval(() => {
    const n = Math.max(1, Math.round(rate() / 100));
    for (let i = 0; i < n && inflight < 64; i += 1) {
      if (Math.random() < rate() / 100 / n) one();
    }
  }, 10);
}

if (mode === "server") server();
else client();
