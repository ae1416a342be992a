// AUNets Live browser demo: webcam -> WebRTC -> aunets serve -> results on a data channel -> canvas.
// Plain JS, no build step, no network beyond the server that served this page.
//
// Latency: each camera frame is drawn into a canvas with a strip of black/white cells above it that encodes a
// frame id (layout shared with stream/webrtc/marker.py: keep them in step). The page remembers the camera
// capture time of each id (requestVideoFrameCallback's captureTime, performance.now() clock); the server reads
// the id back and returns it with the results, so latency = arrival time - capture time, both on this
// page's clock, with no clock synchronisation between browser and server.
"use strict";

const STRIP_ROWS = 16;
const ID_BITS = 18;
const CHECK_BITS = 4;
const CELLS = 2 + ID_BITS + CHECK_BITS;
const ID_MODULUS = 1 << ID_BITS;
const TIMELINE_S = 10;

const $ = (id) => document.getElementById(id);
const video = $("video");
const overlay = $("overlay");
const bars = $("bars");
const timeline = $("timeline");

// Everything the page knows, exposed for tests and for the curious (window.aunets in the console).
const state = {
  config: null,
  connection: "new",
  latest: null,          // latest au.frame payload with a face (or null)
  latestSize: [0, 0],    // frame size the box refers to
  history: [],           // {t, frame, probability, smoothed, state} for the timeline (t: performance.now() ms)
  latencies: [],         // ms, last 300 samples
  latencyCount: 0,       // samples ever taken (latencies keeps the last 300)
  results: 0,            // result messages received
  resultTimes: [],       // arrival times of the last second's results
  dropped: 0,
  serverStatus: null,
  captureTimes: new Map(),  // frame id -> capture time (performance.now() clock)
};
window.aunets = state;

let pc = null;
let channel = null;
let camera = null;
let running = false;
let nextId = 0;
let sendCanvas = null;
let sendCtx = null;
let sendTrack = null;
let statsTimer = null;

function checkBits(id) {
  let v = 0;
  for (let s = 0; s < ID_BITS; s += 4) v ^= (id >> s) & 0xf;
  return v;
}

function drawMarker(ctx, width, id) {
  const bits = [1, 0];
  for (let i = 0; i < ID_BITS; i++) bits.push((id >> (ID_BITS - 1 - i)) & 1);
  const check = checkBits(id);
  for (let i = 0; i < CHECK_BITS; i++) bits.push((check >> (CHECK_BITS - 1 - i)) & 1);
  for (let i = 0; i < CELLS; i++) {
    const x0 = Math.round((i * width) / CELLS);
    const x1 = Math.round(((i + 1) * width) / CELLS);
    ctx.fillStyle = bits[i] ? "#fff" : "#000";
    ctx.fillRect(x0, 0, x1 - x0, STRIP_ROWS);
  }
}

function setConnection(text, cls) {
  state.connection = text;
  const el = $("conn");
  el.textContent = text;
  el.className = "pill " + (cls || "");
}

function message(text) {
  $("message").textContent = text || "";
}

// Each camera frame: remember its capture time, draw it with its id strip, push it to the WebRTC track.
function onCameraFrame(now, meta) {
  if (!running) return;
  const w = video.videoWidth;
  const h = video.videoHeight;
  if (w && h) {
    if (sendCanvas.width !== w || sendCanvas.height !== h + STRIP_ROWS) {
      sendCanvas.width = w;
      sendCanvas.height = h + STRIP_ROWS;
      sendMarkerLayout();
    }
    const id = nextId;
    nextId = (nextId + 1) % ID_MODULUS;
    const captured = meta && typeof meta.captureTime === "number" && meta.captureTime > 0 ? meta.captureTime : now;
    state.captureTimes.set(id, captured);
    if (state.captureTimes.size > 600) state.captureTimes.delete(state.captureTimes.keys().next().value);
    sendCtx.drawImage(video, 0, STRIP_ROWS, w, h);
    drawMarker(sendCtx, w, id);
    if (sendTrack.requestFrame) sendTrack.requestFrame();
  }
  scheduleCameraFrame();
}

function scheduleCameraFrame() {
  if (!running) return;
  if (video.requestVideoFrameCallback) {
    video.requestVideoFrameCallback(onCameraFrame);
  } else {
    requestAnimationFrame((t) => onCameraFrame(t, null));
  }
}

function markerLayout() {
  return { rows: STRIP_ROWS, width: sendCanvas.width, height: sendCanvas.height };
}

function sendMarkerLayout() {
  if (channel && channel.readyState === "open") channel.send(JSON.stringify({ type: "marker", ...markerLayout() }));
}

function waitForIceGathering(peer, timeoutMs) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      peer.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (peer.iceGatheringState === "complete") done();
    };
    peer.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs);
  });
}

async function start() {
  message("");
  setConnection("starting");
  if (!window.isSecureContext || !navigator.mediaDevices) {
    message("The camera needs a secure page: open it as http://127.0.0.1 / localhost, or serve HTTPS (--cert/--key).");
    setConnection("no camera", "bad");
    return;
  }
  state.config = await (await fetch("config")).json();
  $("engine").textContent = state.config.engine;
  camera = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
    audio: false,
  });
  video.srcObject = camera;
  await video.play();
  running = true;

  sendCanvas = document.createElement("canvas");
  sendCanvas.width = video.videoWidth || 640;
  sendCanvas.height = (video.videoHeight || 480) + STRIP_ROWS;
  sendCtx = sendCanvas.getContext("2d", { alpha: false });
  const sendStream = sendCanvas.captureStream(0);
  sendTrack = sendStream.getVideoTracks()[0];
  if ("contentHint" in sendTrack) sendTrack.contentHint = "detail";

  pc = new RTCPeerConnection({ iceServers: state.config.iceServers });
  channel = pc.createDataChannel("results", { ordered: false, maxRetransmits: 0 });
  channel.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  channel.onopen = () => setConnection("connected", "ok");
  channel.onclose = () => setConnection("closed", "bad");
  pc.onconnectionstatechange = () => {
    if (pc && (pc.connectionState === "failed" || pc.connectionState === "disconnected")) {
      setConnection(pc.connectionState, "bad");
    }
  };
  const sender = pc.addTrack(sendTrack, sendStream);
  try {
    const params = sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    await sender.setParameters(params);
  } catch (err) {
    // Firefox has no degradationPreference; the server scales the strip with the frame anyway.
  }
  scheduleCameraFrame();

  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc, 3000);
  setConnection("connecting");
  const response = await fetch("offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type, marker: markerLayout() }),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  state.session = answer.session;
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  statsTimer = setInterval(reportStats, 1000);
}

function stop() {
  running = false;
  clearInterval(statsTimer);
  if (channel) channel.close();
  if (pc) pc.close();
  if (camera) camera.getTracks().forEach((t) => t.stop());
  pc = null;
  channel = null;
  camera = null;
  setConnection("stopped");
}

function percentile(values, q) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((q / 100) * s.length))];
}

function latencySummary() {
  const recent = state.latencies.slice(-100);
  return { p50: percentile(recent, 50), p95: percentile(recent, 95), n: recent.length };
}

function reportStats() {
  const now = performance.now();
  state.resultTimes = state.resultTimes.filter((t) => now - t < 1000);
  const lat = latencySummary();
  $("fps").textContent = state.resultTimes.length.toFixed(0);
  $("latency").textContent = Number.isFinite(lat.p50) ? `${lat.p50.toFixed(0)} ms (p95 ${lat.p95.toFixed(0)})` : "–";
  if (channel && channel.readyState === "open") {
    channel.send(JSON.stringify({ type: "stats", fps: state.resultTimes.length, latency_ms: lat }));
  }
}

function onMessage(msg) {
  const now = performance.now();
  if (msg.type === "status") {
    state.serverStatus = msg;
    return;
  }
  if (msg.type !== "result") return;
  state.results += 1;
  state.resultTimes.push(now);
  state.dropped = msg.dropped;
  $("dropped").textContent = String(msg.dropped);
  state.latestSize = msg.size;
  const seen = new Set();
  for (const r of msg.results) {
    if (r.id !== null && r.id !== undefined && !seen.has(r.id) && state.captureTimes.has(r.id)) {
      seen.add(r.id);
      state.latencies.push(now - state.captureTimes.get(r.id));
      state.latencyCount += 1;
      if (state.latencies.length > 300) state.latencies.shift();
    }
    if (r.no_face) {
      state.latest = null;
      continue;
    }
    state.latest = r;
    state.history.push({ t: now, frame: r.frame, probability: r.probability, smoothed: r.smoothed, state: r.state });
  }
  while (state.history.length && now - state.history[0].t > TIMELINE_S * 1000) state.history.shift();
}

// --- drawing ---------------------------------------------------------------------------------------------

function fitCanvas(canvas) {
  const r = canvas.getBoundingClientRect();
  const w = Math.max(1, Math.round(r.width));
  const h = Math.max(1, Math.round(r.height));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
}

function drawOverlay() {
  fitCanvas(overlay);
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const r = state.latest;
  const [fw, fh] = state.latestSize;
  if (!r || !r.box || !fw) return;
  const sx = overlay.width / fw;
  const sy = overlay.height / fh;
  const [x, y, w, h] = r.box;
  const on = Object.values(r.state || {}).some((v) => v);
  ctx.strokeStyle = on ? "#3fb68b" : "#e6e8eb";
  ctx.lineWidth = 3;
  ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
  ctx.fillStyle = "rgba(0,0,0,0.55)";
  ctx.fillRect(x * sx, y * sy - 20, 150, 20);
  ctx.fillStyle = "#e6e8eb";
  ctx.font = "13px system-ui, sans-serif";
  ctx.fillText(`track ${r.track_id} · view ${r.view}`, x * sx + 5, y * sy - 6);
}

function drawBars() {
  const ctx = bars.getContext("2d");
  const cfg = state.config;
  ctx.clearRect(0, 0, bars.width, bars.height);
  if (!cfg) return;
  const rowH = bars.height / cfg.aus.length;
  const x0 = 230;
  const bw = bars.width - x0 - 30;
  const r = state.latest;
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  cfg.aus.forEach((au, i) => {
    const y = i * rowH;
    const p = r ? r.probability[au] || 0 : 0;
    const s = r ? r.smoothed[au] || 0 : 0;
    const on = r ? !!r.state[au] : false;
    ctx.fillStyle = on ? "#e6e8eb" : "#8a93a0";
    ctx.fillText(`${au}  ${cfg.names[au] || ""}`, 4, y + rowH / 2);
    ctx.fillStyle = "#262d36";
    ctx.fillRect(x0, y + 5, bw, rowH - 10);
    ctx.fillStyle = on ? "#3fb68b" : "#4d6fa3";
    ctx.fillRect(x0, y + 5, bw * p, rowH - 10);
    ctx.fillStyle = "#e0a43a";
    ctx.fillRect(x0 + bw * s - 1.5, y + 2, 3, rowH - 4);
    const thr = cfg.thresholds[au];
    ctx.fillStyle = "#c7ccd3";
    ctx.fillRect(x0 + bw * thr - 0.5, y + 3, 1, rowH - 6);
    ctx.beginPath();
    ctx.arc(bars.width - 14, y + rowH / 2, 6, 0, 2 * Math.PI);
    ctx.fillStyle = on ? "#3fb68b" : "#333b46";
    ctx.fill();
  });
}

function drawTimeline() {
  const ctx = timeline.getContext("2d");
  const cfg = state.config;
  ctx.clearRect(0, 0, timeline.width, timeline.height);
  if (!cfg) return;
  const now = performance.now();
  const laneH = timeline.height / cfg.aus.length;
  const x0 = 44;
  const w = timeline.width - x0;
  const xOf = (t) => x0 + w * (1 - (now - t) / (TIMELINE_S * 1000));
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.strokeStyle = "#2a313b";
  for (let s = 0; s <= TIMELINE_S; s += 2) {
    const x = x0 + (w * s) / TIMELINE_S;
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, timeline.height);
    ctx.stroke();
  }
  cfg.aus.forEach((au, i) => {
    const top = i * laneH;
    ctx.fillStyle = "#8a93a0";
    ctx.fillText(au, 2, top + laneH / 2);
    const h = state.history;
    for (let k = 1; k < h.length; k++) {
      if (h[k].state[au]) {
        ctx.fillStyle = "rgba(63,182,139,0.35)";
        ctx.fillRect(xOf(h[k - 1].t), top + 1, Math.max(1, xOf(h[k].t) - xOf(h[k - 1].t)), laneH - 2);
      }
    }
    ctx.strokeStyle = "#e0a43a";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    h.forEach((e, k) => {
      const x = xOf(e.t);
      const y = top + laneH - 2 - (laneH - 4) * (e.smoothed[au] || 0);
      if (k === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
}

function render() {
  drawOverlay();
  drawBars();
  drawTimeline();
  requestAnimationFrame(render);
}

$("toggle").addEventListener("click", () => {
  if (running) {
    stop();
    $("toggle").textContent = "Start";
  } else {
    $("toggle").textContent = "Stop";
    start().catch(fail);
  }
});

function fail(err) {
  console.error(err);
  message(String(err && err.message ? err.message : err));
  setConnection("error", "bad");
}

// A closed or reloaded tab closes its peer connection at once (the server frees the session).
window.addEventListener("pagehide", () => {
  if (pc) pc.close();
});

requestAnimationFrame(render);
start().catch(fail);
