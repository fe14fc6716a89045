// Peer for bench/run.py: express-session with connect-mongo, on the same MongoDB-compatible server.
//
// Run from bench/peers/node (where `make bench-deps` installs express, express-session,
// connect-mongo and mongodb): node express_app.js PORT MONGO_URL DB_NAME
// Routes mirror bench/app.py: /bare (before the session middleware: no session work), and
// /untouched, /read, /write, /new behind it (/new?keys=K&kib=B: a session of bench/scale.py's sizes). GET /_stats answers the commands the app's
// MongoClient sent (command monitoring), the scenario requests served and the process CPU time.
// Prints READY once listening. Benchmark code, not part of the library.
"use strict";

const path = require("node:path");
const modules = process.env.BENCH_NODE_MODULES || path.join(process.cwd(), "node_modules");
const express = require(path.join(modules, "express"));
const session = require(path.join(modules, "express-session"));
const { MongoClient } = require(path.join(modules, "mongodb"));
const connectMongo = require(path.join(modules, "connect-mongo"));
const MongoStore = connectMongo.MongoStore || connectMongo.default || connectMongo;

const [port, mongoUrl, dbName] = process.argv.slice(2);
const notRequestWork = new Set(["hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo",
  "buildinfo", "saslStart", "saslContinue"]);
const commands = {};
let requests = 0;
let misses = 0;

const client = new MongoClient(mongoUrl, { monitorCommands: true, appName: "tms-bench-express" });
client.on("commandStarted", (event) => {
  if (!notRequestWork.has(event.commandName)) {
    commands[event.commandName] = (commands[event.commandName] || 0) + 1;
  }
});

const app = express();
app.disable("x-powered-by");
app.disable("etag");
const counted = (req, res, next) => {
  // "close" also fires for a request whose client went away (wrk stopping mid-request).
  res.on("close", () => { requests += 1; });
  next();
};

app.get("/bare", counted, (req, res) => res.send("ok"));
app.get("/_stats", (req, res) => {
  const cpu = process.cpuUsage();
  res.json({ requests, misses, commands, cpu_s: (cpu.user + cpu.system) / 1e6 });
});

app.use(session({
  secret: "bench-only-secret",
  // The settings express-session's README recommends; every other option at its default.
  resave: false,
  saveUninitialized: false,
  cookie: { secure: false },
  // autoRemove "native" (the default) creates a TTL index, which FerretDB 1.x refuses; that
  // rejection would fail every request. "disabled" changes nothing per request.
  store: MongoStore.create({ client, dbName, autoRemove: "disabled" }),
}));

app.get("/untouched", counted, (req, res) => res.send("ok"));
app.get("/read", counted, (req, res) => {
  if (req.session.n === undefined) misses += 1;
  res.send(`n=${req.session.n}`);
});
app.get("/write", counted, (req, res) => {
  if (req.session.n === undefined) misses += 1;
  req.session.n = (req.session.n || 0) + 1;
  res.send(`n=${req.session.n}`);
});
// bench/scale.py's session sizes: the same data as bench/scale_data.py's sized_data().
function sizedData(keys, kib) {
  const data = { n: 0 };
  for (let i = 1; i < keys; i += 1) {
    const id = String(i).padStart(4, "0");
    data[`k${id}`] = `value ${id} abcdefghijklmnop`;
  }
  if (kib > 0) data.blob = new Array(kib).fill("x".repeat(1000));
  return data;
}

app.get("/new", (req, res) => {
  const keys = Number(req.query.keys || 0);
  const kib = Number(req.query.kib || 0);
  if (keys || kib) {
    Object.assign(req.session, sizedData(Math.max(keys, 1), kib));
  } else {
    req.session.n = 0;
    req.session.user = { name: "bench", roles: ["reader"], theme: "dark" };
  }
  res.send("new");
});

client.connect().then(() => {
  const server = app.listen(Number(port), "127.0.0.1", () => console.log("READY"));
  const stop = () => {
    setTimeout(() => process.exit(0), 1000).unref();
    server.close();
    server.closeAllConnections();
    client.close().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}).catch((err) => {
  console.error("express peer: cannot connect:", err);
  process.exit(1);
});
