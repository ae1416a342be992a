// AUNets Live browser demo: webcam -> WebRTC -> aunets serve -> results on a data channel -> canvas.
// Plain JS, no build step, no network beyond the server that served this page.
//
// Latency: each camera frame is drawn into a canvas with a strip of black/white cells above it that encodes a
// frame id (layout shared with aunets/stream/webrtc/marker.py: keep them in step). The page remembers the camera
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
const FIREFOX = /\bFirefox\//.test(navigator.userAgent);

const $ = (id) => document.getElementById(id);
const video = $("video");
const overlay = $("overlay");
const bars = $("bars");
const timeline = $("timeline");
const trackChoice = $("track");
const saliencyOn = $("saliency-on");
const saliencyAu = $("saliency-au");

// Everything the page knows, exposed for tests and for the curious (window.aunets in the console).
const state = {
  config: null,
  connection: "new",
  latest: null,          // latest au.frame payload of the shown track (or null)
  latestSize: [0, 0],    // frame size the boxes refer to
  tracks: new Map(),     // track id -> its au.frame payload in the latest frame with faces (every face's box)
  lastSeen: new Map(),   // track id -> arrival time (performance.now() ms) of its latest payload
  selected: null,        // track id whose bars and timeline are shown; null: the largest face
  history: [],           // {t, frame, probability, smoothed, state} of the shown track (t: performance.now() ms)
  latencies: [],         // ms, last 300 samples
  latencyCount: 0,       // samples ever taken (latencies keeps the last 300)
  results: 0,            // result messages received
  resultTimes: [],       // arrival times of the last second's results
  dropped: 0,
  serverStatus: null,
  captureTimes: new Map(),  // frame id -> capture time (performance.now() clock)
  // saliency overlay: Grad-CAM of one AU from the server (off the AU path, newest frame only)
  saliency: { on: false, au: null, count: 0, last: null, lastAt: 0, drawn: false, error: null },
  sheet: { count: 0, ms: null, error: null, busy: false },
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
    if (!FIREFOX && sendTrack.requestFrame) sendTrack.requestFrame();
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
  setupSaliency(state.config);
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
  // Chromium sends one frame per requestFrame() on a captureStream(0) track: exactly the camera's frames. Firefox
  // sends such frames at 1/s, so there the canvas is captured at the camera's own rate instead.
  const cameraRate = camera.getVideoTracks()[0].getSettings().frameRate || 30;
  state.captureMode = FIREFOX ? `captureStream(${cameraRate})` : "captureStream(0) + requestFrame";
  const sendStream = FIREFOX ? sendCanvas.captureStream(cameraRate) : sendCanvas.captureStream(0);
  sendTrack = sendStream.getVideoTracks()[0];
  if ("contentHint" in sendTrack) sendTrack.contentHint = "detail";

  pc = new RTCPeerConnection({ iceServers: state.config.iceServers });
  channel = pc.createDataChannel("results", { ordered: false, maxRetransmits: 0 });
  channel.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  channel.onopen = () => {
    setConnection("connected", "ok");
    sendSaliency();
  };
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
  if (msg.type === "saliency") {
    onSaliency(msg, now);
    return;
  }
  if (msg.type !== "result") return;
  state.results += 1;
  state.resultTimes.push(now);
  state.dropped = msg.dropped;
  $("dropped").textContent = String(msg.dropped);
  state.latestSize = msg.size;
  const seen = new Set();
  let frame = null;
  for (const r of msg.results) {
    if (r.id !== null && r.id !== undefined && !seen.has(r.id) && state.captureTimes.has(r.id)) {
      seen.add(r.id);
      state.latencies.push(now - state.captureTimes.get(r.id));
      state.latencyCount += 1;
      if (state.latencies.length > 300) state.latencies.shift();
    }
    if (r.frame !== frame) {  // results come frame by frame, largest face first
      frame = r.frame;
      state.tracks = new Map();
    }
    if (r.no_face) continue;
    state.tracks.set(r.track_id, r);
    state.lastSeen.set(r.track_id, now);
    if (shownTrack() === r.track_id) {
      if (state.historyTrack !== r.track_id) state.history = [];  // the largest face changed: its own timeline
      state.historyTrack = r.track_id;
      state.latest = r;
      state.history.push({ t: now, frame: r.frame, track: r.track_id, probability: r.probability, smoothed: r.smoothed, state: r.state });
    }
  }
  if (msg.results.length && !state.tracks.has(shownTrack())) state.latest = null;
  // a chosen face gone for 2 s (it left, or its track ended): back to the largest face
  if (state.selected !== null && !(now - (state.lastSeen.get(state.selected) || 0) < 2000)) selectTrack(null);
  for (const [id, t] of state.lastSeen) if (now - t > 2000) state.lastSeen.delete(id);
  updateTrackChoice();
  while (state.history.length && now - state.history[0].t > TIMELINE_S * 1000) state.history.shift();
}

// --- whose AU bars are shown ------------------------------------------------------------------------------

// The track whose bars are shown: the chosen one, else the largest face of the latest frame (listed first).
function shownTrack() {
  if (state.selected !== null) return state.selected;
  const first = state.tracks.keys().next();
  return first.done ? null : first.value;
}

function selectTrack(id) {
  if (id === state.selected) return;
  state.selected = id;
  state.history = [];
  state.latest = state.tracks.get(shownTrack()) || null;
  trackChoice.value = id === null ? "auto" : String(id);
  sendSaliency();
}

// The <select>: "largest face" and every track seen in the last 2 s (rebuilt only when that set changes).
function updateTrackChoice() {
  const ids = [...state.lastSeen.keys()].sort((a, b) => a - b);
  const key = ids.join(",");
  if (trackChoice.dataset.ids === key) return;
  trackChoice.dataset.ids = key;
  trackChoice.replaceChildren(new Option("largest face", "auto"), ...ids.map((id) => new Option(`track ${id}`, String(id))));
  trackChoice.value = state.selected === null ? "auto" : String(state.selected);
}

trackChoice.addEventListener("change", () => selectTrack(trackChoice.value === "auto" ? null : Number(trackChoice.value)));

// Clicking a face's box shows its bars (clicking outside every box goes back to the largest face).
overlay.addEventListener("click", (ev) => {
  const [fw, fh] = state.latestSize;
  if (!fw) return;
  const r = overlay.getBoundingClientRect();
  const x = ((ev.clientX - r.left) / r.width) * fw;
  const y = ((ev.clientY - r.top) / r.height) * fh;
  let hit = null;
  for (const [id, t] of state.tracks) {
    const [bx, by, bw, bh] = t.box;
    if (x >= bx && x <= bx + bw && y >= by && y <= by + bh && (hit === null || bw < state.tracks.get(hit).box[2])) hit = id;
  }
  selectTrack(hit);
});

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

// Every tracked face's box; the one whose bars are shown is drawn thicker, in the accent colour.
function drawOverlay() {
  fitCanvas(overlay);
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const [fw, fh] = state.latestSize;
  if (!fw) return;
  const sx = overlay.width / fw;
  const sy = overlay.height / fh;
  const shown = shownTrack();
  ctx.font = "13px system-ui, sans-serif";
  drawSaliency(ctx, sx, sy);
  for (const [id, r] of state.tracks) {
    if (!r.box) continue;
    const [x, y, w, h] = r.box;
    const on = Object.values(r.state || {}).some((v) => v);
    const mine = id === shown;
    ctx.strokeStyle = mine ? "#e0a43a" : on ? "#3fb68b" : "#e6e8eb";
    ctx.lineWidth = mine ? 4 : 2;
    ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    const label = `track ${id} · view ${r.view}` + (mine ? " · bars" : "");
    ctx.fillStyle = "rgba(0,0,0,0.55)";
    ctx.fillRect(x * sx, y * sy - 20, ctx.measureText(label).width + 10, 20);
    ctx.fillStyle = mine ? "#e0a43a" : "#e6e8eb";
    ctx.fillText(label, x * sx + 5, y * sy - 6);
  }
}

// --- saliency overlay and occlusion sheet ----------------------------------------------------------------

function setupSaliency(cfg) {
  if (!saliencyAu.options.length) {
    for (const au of cfg.aus) saliencyAu.add(new Option(`${au} ${cfg.names[au] || ""}`, au));
    saliencyAu.value = cfg.aus.includes("AU12") ? "AU12" : cfg.aus[0];
  }
  const available = cfg.saliency && cfg.saliency.available;
  saliencyOn.disabled = !available;
  $("saliency-note").textContent = available ? "" : `overlay unavailable: ${cfg.saliency ? cfg.saliency.reason : "old server"}`;
}

function sendSaliency() {
  state.saliency.on = saliencyOn.checked && !saliencyOn.disabled;
  state.saliency.au = state.saliency.on ? saliencyAu.value : null;
  if (!state.saliency.on) {
    state.saliency.last = null;
    $("saliency-rate").textContent = "–";
  }
  if (channel && channel.readyState === "open") {
    channel.send(JSON.stringify({ type: "saliency", au: state.saliency.au, track: state.selected }));
  }
}

function onSaliency(msg, now) {
  if (msg.error) {
    state.saliency.error = msg.error;
    $("saliency-note").textContent = msg.error;
    saliencyOn.checked = false;
    sendSaliency();
    return;
  }
  if (!state.saliency.on || msg.au !== state.saliency.au) return;  // a map computed before the toggle changed
  state.saliency.count += 1;
  state.saliency.last = msg;
  state.saliency.lastAt = now;
  $("saliency-rate").textContent = `${msg.rate.toFixed(1)}/s · ${msg.au} p ${msg.probability.toFixed(2)}`;
}

// blue (0) -> cyan -> yellow -> red (1), as the occlusion sheets (OpenCV's JET)
function jet(v) {
  const c = (x) => Math.round(255 * Math.min(1, Math.max(0, x)));
  return [c(1.5 - Math.abs(4 * v - 3)), c(1.5 - Math.abs(4 * v - 2)), c(1.5 - Math.abs(4 * v - 1))];
}

let heatCanvas = null;

function drawSaliency(ctx, sx, sy) {
  const s = state.saliency;
  const m = s.last;
  s.drawn = false;
  if (!s.on || !m || performance.now() - s.lastAt > 2000) return;  // stale: the face may have moved
  const n = m.grid;
  if (!heatCanvas) heatCanvas = document.createElement("canvas");
  if (heatCanvas.width !== n) {
    heatCanvas.width = n;
    heatCanvas.height = n;
  }
  const hctx = heatCanvas.getContext("2d");
  const img = hctx.createImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const v = m.map[i] / 255;
    const [r, g, b] = jet(v);
    img.data[4 * i] = r;
    img.data[4 * i + 1] = g;
    img.data[4 * i + 2] = b;
    img.data[4 * i + 3] = Math.round(255 * (0.25 + 0.45 * v));
  }
  hctx.putImageData(img, 0, 0);
  const [x, y, side] = m.window;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(heatCanvas, x * sx, y * sy, side * sx, side * sy);
  // the label at the window's lower left, kept inside the video (the crop window may reach past the frame)
  const lx = Math.max(0, x * sx);
  const ly = Math.min((y + side) * sy, overlay.height);
  const label = `${m.au} Grad-CAM · p ${m.probability.toFixed(2)}` + (m.probability < (state.config.thresholds[m.au] ?? 0.5) ? " (AU off)" : "");
  ctx.fillStyle = "rgba(0,0,0,0.6)";
  ctx.fillRect(lx, ly - 20, ctx.measureText(label).width + 10, 20);
  ctx.fillStyle = "#e6e8eb";
  ctx.fillText(label, lx + 5, ly - 6);
  s.drawn = true;
}

async function occlusionSheet() {
  if (!state.session || state.sheet.busy) return;
  state.sheet.busy = true;
  const button = $("sheet");
  button.disabled = true;
  button.textContent = "computing…";
  const t0 = performance.now();
  try {
    const response = await fetch(`sessions/${state.session}/occlusion`, { method: "POST" });
    if (!response.ok) throw new Error(await response.text());
    const url = URL.createObjectURL(await response.blob());
    const img = $("sheet-img");
    if (img.src) URL.revokeObjectURL(img.src);
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = reject;
      img.src = url;
    });
    state.sheet.ms = performance.now() - t0;
    state.sheet.count += 1;
    state.sheet.error = null;
    $("sheet-figure").hidden = false;
    $("sheet-caption").textContent = `occlusion sheet of the frame at ${new Date().toLocaleTimeString()} (${(state.sheet.ms / 1000).toFixed(1)} s); right-click to save`;
  } catch (err) {
    state.sheet.error = String(err && err.message ? err.message : err);
    $("saliency-note").textContent = `occlusion sheet failed: ${state.sheet.error}`;
  } finally {
    state.sheet.busy = false;
    button.disabled = false;
    button.textContent = "Occlusion sheet";
  }
}

saliencyOn.addEventListener("change", sendSaliency);
saliencyAu.addEventListener("change", sendSaliency);
$("sheet").addEventListener("click", () => occlusionSheet());

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
