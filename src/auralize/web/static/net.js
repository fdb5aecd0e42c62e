// auralize socket worker: holds the WebSocket off the page's main thread.
//
// PCM packets go straight to the AudioWorklet through a MessagePort, so charts,
// the spectrogram or a busy tab can never delay audio; JSON messages and small
// per-block counters go to the page.
"use strict";

const HEADER_BYTES = 24; // "<4sIdII": magic, seq, t_s, frames, sample rate
// then frames x channels int16 samples, frames interleaved (channels: from "hello")
let ws = null, audioPort = null, audioOn = false, lastSeq = null, channels = 1;
let blocks = 0, gaps = 0, lastBlockEnd = 0, lastReport = 0;

self.onmessage = (e) => {
  const m = e.data;
  if (m.type === "connect") open(m.url);
  else if (m.type === "port") audioPort = m.port;
  else if (m.type === "audio") { audioOn = !!m.on; lastSeq = null; }
  else if (m.type === "resync") lastSeq = null;
  else if (m.type === "channels") channels = Math.max(1, m.n | 0);
  else if (m.type === "send" && ws && ws.readyState === 1) ws.send(m.text);
};

function open(url) {
  lastSeq = null;
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => self.postMessage({ type: "open" });
  ws.onclose = (ev) => self.postMessage({ type: "close", code: ev.code });
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") self.postMessage({ type: "text", text: ev.data });
    else pcm(ev.data);
  };
}

function pcm(buf) {
  if (!audioOn || !audioPort || buf.byteLength < HEADER_BYTES) return;
  const dv = new DataView(buf);
  const seq = dv.getUint32(4, true);
  const t = dv.getFloat64(8, true);
  const frames = dv.getUint32(16, true);
  const rate = dv.getUint32(20, true);
  if (lastSeq !== null) {
    const missed = (seq - lastSeq - 1) >>> 0;
    if (missed > 0 && missed < 1e6) gaps += missed;
  }
  lastSeq = seq;
  blocks += 1;
  const c = channels;
  if (buf.byteLength < HEADER_BYTES + 2 * frames * c) return;
  const src = new Int16Array(buf, HEADER_BYTES, frames * c);
  // the worklet plays two channels: mono goes to both, a third and more are dropped
  const used = Math.min(c, 2);
  const out = [];
  for (let k = 0; k < used; k++) {
    const f = new Float32Array(frames);
    for (let i = 0; i < frames; i++) f[i] = src[i * c + k] / 32767;
    out.push(f);
  }
  lastBlockEnd = t + frames / rate;
  audioPort.postMessage({ type: "pcm", samples: out }, out.map((f) => f.buffer));
  const now = performance.now();
  if (now - lastReport > 50) {
    lastReport = now;
    self.postMessage({ type: "pcmstat", blocks, gaps, lastBlockEnd });
  }
}
