"use strict";
// The Talker page: microphone to the web service, the avatar back, over WebRTC or WebSocket.
// window.talker exposes what a person sees as numbers, for the browser tests and the benchmark.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// ?echo_cancellation=0: for headsets and devices that cancel echo themselves (and the barge-in test:
// headless Chromium's canceller mutes a fake microphone while WebRTC audio plays).
const MIC = { echoCancellation: params.get("echo_cancellation") !== "0", noiseSuppression: true,
              autoGainControl: true, channelCount: 1 };

const talker = window.talker = {
  state: "ready", transport: "", message: "", turns: {}, micStartedAt: 0,
  framesPainted: 0, replyFramesPainted: 0, idleFramesPainted: 0, audioEnergy: 0, audioChunks: 0,
  underruns: 0, closed: false, interrupted: [],
};
let playingTurn = 0;      // the turn whose reply is on screen
let cfg = null;
let conn = null;          // the open connection: { send(obj), flush(), close() }
let talking = false;      // push-to-talk: between Talk and Send
let pendingSpeechEnd = 0; // when the user's last utterance ended (performance.now())

function setState(state, message) {
  talker.state = state;
  const el = $("state");
  el.textContent = state;
  el.className = "state " + state;
  if (message !== undefined) { talker.message = message; $("message").textContent = message; }
}

function turn(n) {
  return talker.turns[n] || (talker.turns[n] = { transcript: "", reply: "", partial: "", cancelled: false });
}

// A reply frame was painted: the first one of a turn closes the latency readout.
function replyPainted(n, when) {
  talker.replyFramesPainted++;
  const t = turn(n);
  if (t.firstFramePainted) return;
  t.firstFramePainted = when;
  playingTurn = n;
  if (pendingSpeechEnd) {
    t.speechEnd = pendingSpeechEnd;
    t.latency = (when - pendingSpeechEnd) / 1000;
    pendingSpeechEnd = 0;
    $("latency").textContent = t.latency.toFixed(2) + " s";
  }
  setState("speaking");
}

function onEvent(m) {
  switch (m.type) {
    case "speech_started":
      // The user speaks: the avatar stops at once (the gateway cancels the reply if it is still making it).
      if (talker.state === "speaking") talker.interrupted.push(playingTurn);
      if (conn) conn.flush();
      $("you").textContent = "";
      setState("listening");
      break;
    case "partial":
      turn(m.turn).partial = m.text;
      $("you").textContent = m.text;
      break;
    case "end_of_turn":
      pendingSpeechEnd = performance.now() - 1000 * (m.delay || 0);
      setState("thinking");
      break;
    case "transcript":
      turn(m.turn).transcript = m.text;
      $("you").textContent = m.text;
      $("reply").textContent = "";
      if (talker.state !== "speaking") setState("thinking");
      break;
    case "reply":
      turn(m.turn).reply += m.delta;
      $("reply").textContent = turn(m.turn).reply;
      break;
    case "first_frame":
      if (conn && conn.firstFrame) conn.firstFrame(m.turn);
      break;
    case "played":  // WebRTC: the service has sent the last of the reply's audio
      if (conn && conn.played) conn.played(m.turn);
      break;
    case "summary": {
      const t = turn(m.turn);
      Object.assign(t, { summary: m, cancelled: m.cancelled, done: true });
      if (conn && conn.turnDone) conn.turnDone(m.turn);
      else setState("listening");
      break;
    }
    case "error":
      turn(m.turn).error = m;
      setState("listening", `${m.stage}: ${m.message}`);
      break;
    case "closed":
      talker.closed = true;
      if (m.state !== "ended") setState(m.state, m.message);
      else setState("ready", "the conversation ended");
      teardown();
      break;
  }
}

async function startOptions() {
  const options = { voice: $("voice").value, key: $("key").value };
  const file = $("portrait").files[0];
  if (file) {
    const url = await new Promise((ok) => { const r = new FileReader(); r.onload = () => ok(r.result); r.readAsDataURL(file); });
    options.avatar = url.slice(url.indexOf(",") + 1);
  }
  return options;
}

// --- WebRTC -------------------------------------------------------------------

function beacon(session) {
  if (session) navigator.sendBeacon("/leave", new Blob([session], { type: "text/plain" }));
}

async function startWebRtc(options) {
  // No ICE servers on the page: the service's own (TALKER_WEB_ICE_SERVERS) cover NAT on its side.
  const pc = new RTCPeerConnection({ iceServers: [] });
  const channel = pc.createDataChannel("events");
  channel.onmessage = (e) => onEvent(JSON.parse(e.data));
  // The microphone joins once connected (attachMic): nothing said before the page listens is lost.
  const micSender = pc.addTransceiver("audio", { direction: "sendrecv" }).sender;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (e) => {
    const el = e.track.kind === "video" ? $("video") : $("audio");
    el.srcObject = new MediaStream([e.track]);
    el.play().catch(() => {});
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => {
    if (pc.iceGatheringState === "complete") return ok();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && ok());
    setTimeout(ok, 2000);
  });
  const resp = await fetch("/offer", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer", ...options }),
  });
  const answer = await resp.json().catch(() => ({}));
  if (!resp.ok) { pc.close(); throw Object.assign(new Error(answer.message || resp.statusText), { state: answer.state || "error" }); }
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  const connected = await new Promise((ok) => {
    if (pc.connectionState === "connected") return ok(true);
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "connected") ok(true);
      if (pc.connectionState === "failed") ok(false);
    });
    setTimeout(() => ok(pc.connectionState === "connected"), cfg.ice_timeout_seconds * 1000);
  });
  if (!connected) { beacon(answer.session); pc.close(); throw Object.assign(new Error("ICE did not connect"), { fallback: true }); }
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "failed" || pc.connectionState === "disconnected") {
      if (!talker.closed) setState("error", "the connection was lost");
    }
  });

  const video = $("video");
  let replyTurn = 0;     // the turn whose frames are showing (after its first_frame event)
  let awaitingFirst = 0; // a turn whose first frame is on its way
  const onPaint = (now) => {
    talker.framesPainted++;
    if (awaitingFirst) { replyTurn = awaitingFirst; awaitingFirst = 0; replyPainted(replyTurn, now); }
    else if (talker.state === "speaking" && replyTurn) talker.replyFramesPainted++;
    else talker.idleFramesPainted++;
    if (!talker.closed) video.requestVideoFrameCallback(onPaint);
  };
  video.requestVideoFrameCallback(onPaint);
  const poll = setInterval(async () => {
    for (const s of (await pc.getStats()).values()) {
      if (s.type === "inbound-rtp" && s.kind === "audio") talker.audioEnergy = s.totalAudioEnergy || 0;
    }
  }, 500);
  const send = (obj) => channel.readyState === "open" && channel.send(JSON.stringify(obj));
  return {
    send,
    attachMic(mic) { return micSender.replaceTrack(mic.getAudioTracks()[0]); },
    flush() {},  // the service drops what has not played
    firstFrame(n) { awaitingFirst = n; },
    turnDone(n) { if (!turn(n).firstFramePainted && talker.state === "thinking") setState("listening"); },
    played(n) { if (replyTurn === n) { replyTurn = 0; if (talker.state === "speaking") setState("listening"); } },
    close() { clearInterval(poll); beacon(answer.session); send({ type: "stop" }); pc.close(); },
  };
}

// --- WebSocket ------------------------------------------------------------------

async function startWs(options) {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.binaryType = "arraybuffer";
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error("the WebSocket did not open")); });
  ws.send(JSON.stringify({ type: "start", ...options }));

  // Playback: each turn's audio on WebAudio from `base`; a frame is drawn when the audio clock reaches its pts.
  const ctx = new AudioContext();
  ctx.resume();
  const canvas = $("canvas"), g = canvas.getContext("2d");
  canvas.hidden = false;
  $("video").hidden = true;
  let clock = { turn: 0, base: 0 }, lastEnd = 0, sources = [], frames = [], idle = null, idleDrawn = null, doneTurn = 0;
  let dropThrough = 0;  // media of turns up to this one is not played (the user spoke over them)
  const flush = () => {
    sources.forEach((s) => { try { s.stop(); } catch (e) { /* already ended */ } });
    sources = []; frames = []; lastEnd = ctx.currentTime; dropThrough = clock.turn;
  };
  const draw = (bmp) => {
    if (canvas.width !== bmp.width) { canvas.width = bmp.width; canvas.height = bmp.height; }
    g.drawImage(bmp, 0, 0);
    talker.framesPainted++;
  };
  const HEADER = 20;
  ws.onmessage = async (e) => {
    if (typeof e.data === "string") return onEvent(JSON.parse(e.data));
    const v = new DataView(e.data), kind = v.getUint8(0), n = v.getUint32(4, true), pts = v.getFloat64(8, true);
    if (kind !== 3 && n <= dropThrough) return;
    if (kind === 1) {
      const rate = v.getUint32(16, true), pcm = new Int16Array(e.data, HEADER);
      if (n !== clock.turn) { clock = { turn: n, base: Math.max(ctx.currentTime + 0.08, lastEnd) }; }
      const buf = ctx.createBuffer(1, pcm.length, rate), ch = buf.getChannelData(0);
      let energy = 0;
      for (let i = 0; i < pcm.length; i++) { ch[i] = pcm[i] / 32768; energy += ch[i] * ch[i]; }
      talker.audioEnergy += energy / rate;
      talker.audioChunks++;
      const src = ctx.createBufferSource();
      src.buffer = buf;
      src.connect(ctx.destination);
      let at = clock.base + pts;
      if (at < ctx.currentTime) { talker.underruns++; clock.base += ctx.currentTime - at; at = ctx.currentTime; }
      src.start(at);
      sources.push(src);
      src.onended = () => { sources = sources.filter((s) => s !== src); };
      lastEnd = Math.max(lastEnd, at + buf.duration);
    } else {
      const bmp = await createImageBitmap(new Blob([new Uint8Array(e.data, HEADER)], { type: "image/jpeg" }));
      if (kind === 2) frames.push({ turn: n, pts, bmp });
      else idle = bmp;
    }
  };
  const paint = () => {
    if (talker.closed) return;
    let show = null;
    while (frames.length && frames[0].turn === clock.turn && frames[0].pts <= ctx.currentTime - clock.base) show = frames.shift();
    while (frames.length && frames[0].turn < clock.turn) frames.shift();  // a stopped turn's
    if (show) {
      draw(show.bmp);
      if (!turn(show.turn).firstFramePainted) replyPainted(show.turn, performance.now());
      else talker.replyFramesPainted++;
    } else if (!frames.length && ctx.currentTime >= lastEnd) {
      if (doneTurn === clock.turn && talker.state === "speaking") setState("listening");
      if (idle && idle !== idleDrawn) { draw(idle); idleDrawn = idle; talker.idleFramesPainted++; }
    }
    requestAnimationFrame(paint);
  };
  requestAnimationFrame(paint);
  ws.onclose = () => { if (!talker.closed) { talker.closed = true; if (talker.state !== "busy") setState("error", "the connection closed"); } };
  const send = (obj) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(obj));
  let micCtx = null;
  return {
    send, flush,
    async attachMic(mic) {
      // Microphone: PCM16 at the service's input rate, 20 ms per message.
      micCtx = new AudioContext({ sampleRate: cfg.input_sample_rate });
      await micCtx.audioWorklet.addModule("/static/mic-worklet.js");
      const node = new AudioWorkletNode(micCtx, "mic-sender");
      const mute = micCtx.createGain();
      mute.gain.value = 0;
      micCtx.createMediaStreamSource(mic).connect(node).connect(mute).connect(micCtx.destination);
      node.port.onmessage = (e) => {
        if (ws.readyState !== WebSocket.OPEN) return;
        const f = e.data, pcm = new Int16Array(f.length);
        for (let i = 0; i < f.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(f[i] * 32767)));
        ws.send(pcm.buffer);
      };
    },
    turnDone(n) { doneTurn = n; },
    close() { send({ type: "stop" }); ws.close(); if (micCtx) micCtx.close(); ctx.close(); },
  };
}

// --- controls -------------------------------------------------------------------

let mic = null;

function teardown() {
  if (conn) { const c = conn; conn = null; c.close(); }
  if (mic) { mic.getTracks().forEach((t) => t.stop()); mic = null; }
  talking = false;
  $("start").disabled = false;
  $("stop").disabled = true;
  $("talk").disabled = true;
}

async function start() {
  $("start").disabled = true;
  talker.closed = false;
  setState("connecting", "");
  try {
    const options = await startOptions();
    const forced = params.get("transport");
    if (forced !== "ws") {
      try {
        conn = await startWebRtc(options);
        talker.transport = "webrtc";
      } catch (e) {
        if (!e.fallback || forced === "webrtc") throw e;
      }
    }
    if (!conn) { conn = await startWs(options); talker.transport = "ws"; }
    const opened = conn;
    mic = await navigator.mediaDevices.getUserMedia({ audio: MIC });
    if (talker.closed || conn !== opened) { const state = talker.state; teardown(); setState(state); return; }  // e.g. busy
    await opened.attachMic(mic);
    talker.micStartedAt = performance.now();
    $("transport").textContent = talker.transport === "ws" ? "WebSocket" : "WebRTC";
    $("stop").disabled = false;
    $("talk").disabled = false;
    if (!talker.closed) setState("listening");
    if (cfg.turn_detection === "client" && params.get("autostart") === "1") toggleTalk();
  } catch (e) {
    teardown();
    talker.closed = true;
    setState(e.state === "busy" ? "busy" : "error", e.message);
  }
}

function toggleTalk() {
  if (!conn) return;
  if (!talking) {
    talking = true;
    // Talking over the avatar is a barge-in: it stops at once (the gateway cancels what it still makes).
    if (talker.state === "speaking") talker.interrupted.push(playingTurn);
    conn.flush();
    conn.send({ type: "talk" });
    $("talk").textContent = "Send";
    setState("listening");
  } else {
    talking = false;
    pendingSpeechEnd = performance.now();
    conn.send({ type: "end_of_turn" });
    $("talk").textContent = "Talk";
    setState("thinking");
  }
}
talker.toggleTalk = toggleTalk;

// A small grey picture of what is on screen now: the tests compare these to see the face move.
talker.sample = (size = 64) => {
  const src = talker.transport === "ws" ? $("canvas") : $("video");
  const c = document.createElement("canvas");
  c.width = c.height = size;
  const g = c.getContext("2d");
  g.drawImage(src, 0, 0, size, size);
  const d = g.getImageData(0, 0, size, size).data, out = [];
  for (let i = 0; i < d.length; i += 4) out.push(Math.round((d[i] + d[i + 1] + d[i + 2]) / 3));
  return out;
};

async function init() {
  cfg = await (await fetch("/config.json")).json();
  for (const v of cfg.voices) { const o = document.createElement("option"); o.value = o.textContent = v; $("voice").append(o); }
  $("keybox").hidden = !cfg.require_api_key;
  $("talk").hidden = cfg.turn_detection !== "client";
  $("talk").disabled = true;
  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", () => { teardown(); setState("ready", ""); });
  $("talk").addEventListener("click", toggleTalk);
  window.addEventListener("pagehide", teardown);
  if (params.get("autostart") === "1") start();
}
init();
