// Compare two runs by ear: A and B (a stereo A|B file or two files), one cross-fader.
// The mix graph is built by mixGraph() on any BaseAudioContext, so an
// OfflineAudioContext renders exactly what the speakers would get (used by tests).
"use strict";

const state = { a: null, b: null, names: ["", ""], fader: 0.5, spread: false,
                ctx: null, nodes: null, startedAt: 0, offset: 0, playing: false };

// Equal-power cross-fade: x = 0 only A, x = 1 only B, x = 0.5 both at -3 dB.
function faderGains(x) {
  return [Math.cos(x * Math.PI / 2), Math.sin(x * Math.PI / 2)];
}

function channel(buffer, index) {
  const out = new AudioBuffer({ length: buffer.length, numberOfChannels: 1,
                                sampleRate: buffer.sampleRate });
  out.copyToChannel(buffer.getChannelData(Math.min(index, buffer.numberOfChannels - 1)), 0);
  return out;
}

function mixGraph(ctx, a, b, x, spread, offset) {
  const [ga, gb] = faderGains(x);
  const nodes = [];
  [[a, ga, -1], [b, gb, 1]].forEach(([buffer, gain, side]) => {
    const src = new AudioBufferSourceNode(ctx, { buffer });
    const amp = new GainNode(ctx, { gain });
    const pan = new StereoPannerNode(ctx, { pan: spread ? side : 0 });
    src.connect(amp).connect(pan).connect(ctx.destination);
    src.start(0, offset || 0);
    nodes.push({ src, amp, pan });
  });
  return nodes;
}

// Render `seconds` of the mix offline: [left, right] Float32Arrays (for tests).
async function renderMix(seconds, x, spread) {
  const rate = state.a.sampleRate;
  const ctx = new OfflineAudioContext(2, Math.round(seconds * rate), rate);
  mixGraph(ctx, state.a, state.b, x, spread, 0);
  const out = await ctx.startRendering();
  return [Array.from(out.getChannelData(0)), Array.from(out.getChannelData(1))];
}

const $ = (id) => document.getElementById(id);
const duration = () => Math.max(state.a.duration, state.b.duration);

function status(text) { $("status").textContent = text; }

async function decode(file) {
  const probe = new OfflineAudioContext(1, 1, 44100);
  return probe.decodeAudioData(await file.arrayBuffer());
}

function ready() {
  $("player").hidden = false;
  $("names").textContent = `A: ${state.names[0]}, B: ${state.names[1]}, ` +
    `${duration().toFixed(1)} s`;
  status("");
}

async function loadStereo(file) {
  const buffer = await decode(file);
  if (buffer.numberOfChannels < 2) {
    status(`${file.name} has one channel; pick the stereo file of auralize compare`);
    return;
  }
  state.a = channel(buffer, 0);
  state.b = channel(buffer, 1);
  state.names = [`${file.name} (left)`, `${file.name} (right)`];
  ready();
}

async function loadOne(which, file) {
  const buffer = channel(await decode(file), 0);
  state[which] = buffer;
  state.names[which === "a" ? 0 : 1] = file.name;
  if (state.a && state.b) ready();
}

function position() {
  return state.playing ? state.offset + state.ctx.currentTime - state.startedAt : state.offset;
}

function stop() {
  if (state.nodes) state.nodes.forEach((n) => n.src.stop());
  state.nodes = null;
}

function play() {
  state.ctx = state.ctx || new AudioContext({ sampleRate: state.a.sampleRate });
  state.ctx.resume();
  if (state.offset >= duration()) state.offset = 0;
  state.nodes = mixGraph(state.ctx, state.a, state.b, state.fader, state.spread, state.offset);
  state.startedAt = state.ctx.currentTime;
  state.playing = true;
  $("play").textContent = "Pause";
}

function pause() {
  state.offset = position();
  stop();
  state.playing = false;
  $("play").textContent = "Play";
}

function setFader(x) {
  state.fader = x;
  if (!state.nodes) return;
  const [ga, gb] = faderGains(x);
  const t = state.ctx.currentTime;
  state.nodes[0].amp.gain.setTargetAtTime(ga, t, 0.01);  // ~10 ms: no clicks
  state.nodes[1].amp.gain.setTargetAtTime(gb, t, 0.01);
}

function tick() {
  if (state.a && state.b) {
    const p = Math.min(position(), duration());
    $("time").textContent = `${p.toFixed(1)} s`;
    $("seek").value = String(p / duration());
    if (state.playing && p >= duration()) { pause(); state.offset = 0; }
  }
  requestAnimationFrame(tick);
}

function guard(promise) { promise.catch((e) => status(`cannot read that file: ${e.message}`)); }

$("ab-file").addEventListener("change", (e) => guard(loadStereo(e.target.files[0])));
$("a-file").addEventListener("change", (e) => guard(loadOne("a", e.target.files[0])));
$("b-file").addEventListener("change", (e) => guard(loadOne("b", e.target.files[0])));
$("play").addEventListener("click", () => (state.playing ? pause() : play()));
$("fader").addEventListener("input", (e) => setFader(Number(e.target.value)));
$("spread").addEventListener("change", (e) => {
  state.spread = e.target.checked;
  if (state.playing) { pause(); play(); }
});
$("seek").addEventListener("change", (e) => {
  const playing = state.playing;
  if (playing) pause();
  state.offset = Number(e.target.value) * duration();
  if (playing) play();
});
requestAnimationFrame(tick);

window.auralizeCompare = { state, faderGains, renderMix };
