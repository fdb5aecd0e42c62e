// auralize notebook widget (anywidget): live training sound through the notebook's comm.
//
// The kernel sends one message per block: {type: "pcm", t_s, voices, frames} with one
// int16 buffer per voice (a stem).  Mute, solo and level are applied here, in the
// browser, so they work while a training cell keeps the kernel busy; the mix goes to
// the live page's AudioWorklet player (its source arrives as the `worklet_js` trait).
// Steps feed a small loss chart; announcements are said in an ARIA live region
// when they are heard.

const LEVEL_DEFAULT = 80;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function render({ model, el: host }) {
  const uid = Math.random().toString(36).slice(2, 8);
  const root = el("section", { class: "auralize-widget", "aria-label": `auralize: ${model.get("title")}` });
  const head = el("div", { class: "au-row" });
  const title = el("strong", { class: "au-title" }, `auralize · ${model.get("title")}`);
  const start = el("button", { type: "button", class: "au-start", "aria-pressed": "false" }, "Start audio");
  const levelLabel = el("label", { for: `au-level-${uid}` }, "Level");
  const level = el("input", { id: `au-level-${uid}`, type: "range", min: "0", max: "100",
                              value: String(LEVEL_DEFAULT), "aria-valuetext": `${LEVEL_DEFAULT}%` });
  head.append(title, start, levelLabel, level);
  const mixer = el("fieldset", { class: "au-mixer" });
  mixer.append(el("legend", {}, "Series"));
  const status = el("p", { class: "au-status" }, "waiting for the first step");
  const chart = el("canvas", { class: "au-chart", width: "480", height: "110", role: "img",
                               "aria-label": "Loss chart: no steps yet" });
  const live = el("div", { class: "au-live", role: "status", "aria-live": "polite" });
  root.append(head, mixer, status, chart, live);
  host.append(root);

  const A = { ctx: null, node: null, gain: null, analyser: null, on: false, buffered: 0,
              voices: {}, losses: [], steps: 0, lastLoss: null, played: 0,
              underruns: 0, skipped: 0 };
  const sampleRate = model.get("sample_rate");
  window.auralizeWidgets = window.auralizeWidgets || [];
  window.auralizeWidgets.push(A);

  function effective(name) {
    const v = A.voices[name];
    const soloing = Object.values(A.voices).some((x) => x.solo);
    return v.mute || (soloing && !v.solo) ? 0 : 1;
  }

  function addVoice(name) {
    if (A.voices[name]) return;
    A.voices[name] = { mute: false, solo: false, gain: 1 };
    const row = el("div", { class: "au-voice" });
    row.append(el("span", { class: "au-name" }, name));
    for (const what of ["mute", "solo"]) {
      const id = `au-${what}-${name}-${uid}`.replace(/[^A-Za-z0-9_-]/g, "_");
      const box = el("input", { type: "checkbox", id });
      box.addEventListener("change", () => { A.voices[name][what] = box.checked; });
      const label = el("label", { for: id }, `${what === "mute" ? "Mute" : "Solo"} ${name}`);
      row.append(box, label);
    }
    mixer.append(row);
  }

  async function startAudio() {
    if (!A.ctx) {
      A.ctx = new AudioContext({ sampleRate, latencyHint: "interactive" });
      const url = URL.createObjectURL(new Blob([model.get("worklet_js")], { type: "text/javascript" }));
      await A.ctx.audioWorklet.addModule(url);
      A.node = new AudioWorkletNode(A.ctx, "auralize-pcm-player", {
        outputChannelCount: [2], processorOptions: { targetS: 0.35, maxS: 2.0, capacityS: 8 } });
      A.node.port.onmessage = (e) => {
        A.buffered = e.data.buffered || 0;
        A.played = e.data.framesPlayed || 0;
        A.underruns = e.data.underruns || 0;
        A.skipped = e.data.skipped || 0;
      };
      A.gain = A.ctx.createGain();
      A.analyser = A.ctx.createAnalyser();
      A.analyser.fftSize = 4096;
      A.node.connect(A.gain).connect(A.analyser).connect(A.ctx.destination);
    }
    await A.ctx.resume();
    A.node.port.postMessage({ type: "flush" });
    setLevel();
    A.on = true;
    start.textContent = "Stop audio";
    start.setAttribute("aria-pressed", "true");
  }

  function stopAudio() {
    A.on = false;
    if (A.ctx) A.ctx.suspend();
    start.textContent = "Start audio";
    start.setAttribute("aria-pressed", "false");
  }

  function setLevel() {
    const v = Number(level.value);
    level.setAttribute("aria-valuetext", `${v}%`);
    if (A.gain) A.gain.gain.setTargetAtTime((v / 100) ** 2, A.ctx.currentTime, 0.02);
  }

  start.addEventListener("click", () => (A.on ? stopAudio() : startAudio()));
  level.addEventListener("input", setLevel);

  function onPcm(msg, buffers) {
    msg.voices.forEach(addVoice);
    if (!A.on || !A.node) return;
    const n = msg.frames;
    const mix = new Float32Array(n);
    msg.voices.forEach((name, i) => {
      const b = buffers[i];
      const pcm = new Int16Array(b.buffer, b.byteOffset, b.byteLength >> 1);
      const v = A.voices[name];
      const from = v.gain, to = effective(name);
      v.gain = to;
      if (from === 0 && to === 0) return;
      for (let k = 0; k < n; k++) mix[k] += (pcm[k] / 32767) * (from + ((to - from) * (k + 1)) / n);
    });
    if (window.auralizeCapture) window.auralizeCapture.push({ t_s: msg.t_s, step_t_s: msg.step_t_s,
                                                                samples: Array.from(mix) });
    A.node.port.postMessage({ type: "pcm", samples: [mix] }, [mix.buffer]); // one channel: mono
  }

  function drawChart() {
    const g = chart.getContext("2d");
    const w = chart.width, h = chart.height;
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, w, h);
    const ys = A.losses.filter((y) => Number.isFinite(y));
    if (ys.length < 2) return;
    const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
    g.strokeStyle = "#1f4e99";
    g.lineWidth = 2;
    g.beginPath();
    A.losses.forEach((y, i) => {
      const x = (i / (A.losses.length - 1)) * (w - 8) + 4;
      const yy = h - 6 - ((y - lo) / span) * (h - 12);
      i ? g.lineTo(x, yy) : g.moveTo(x, yy);
    });
    g.stroke();
  }

  function onSteps(steps) {
    for (const s of steps) {
      A.steps += 1;
      if (s.loss !== null && s.loss !== undefined) {
        A.lastLoss = s.loss;
        A.losses.push(s.loss);
        if (A.losses.length > 2000) A.losses.splice(0, A.losses.length - 2000);
      }
    }
    const loss = A.lastLoss === null ? "none yet" : A.lastLoss.toPrecision(4);
    status.textContent = `step ${A.steps} · loss ${loss}`;
    chart.setAttribute("aria-label", `Loss chart: ${A.steps} steps, latest loss ${loss}`);
    drawChart();
  }

  function onAnnounce(msg) {
    const heardIn = (msg.delay_s || 0) * 1000 + (A.on ? (A.buffered / sampleRate) * 1000 : 0);
    setTimeout(() => { live.textContent = msg.text; }, heardIn);
  }

  const onMessage = (msg, buffers) => {
    if (msg.type === "pcm") onPcm(msg, buffers);
    else if (msg.type === "steps") onSteps(msg.steps);
    else if (msg.type === "announce") onAnnounce(msg);
  };
  model.on("msg:custom", onMessage);
  model.on("change:finished", () => {
    if (model.get("finished")) {
      live.textContent = "Training finished.";
      if (A.node) A.node.port.postMessage({ type: "idle", idle: true });
    }
  });
  return () => {
    model.off("msg:custom", onMessage);
    if (A.ctx) A.ctx.close();
  };
}

export default { render };
