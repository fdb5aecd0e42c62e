// auralize live page: socket, AudioWorklet player, spectrogram, charts, mixer.
// Plain JavaScript, no dependencies, nothing fetched from elsewhere.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const PALETTE = ["#5ac8fa", "#ff9f43", "#a78bfa", "#34d399", "#f472b6", "#facc15",
                   "#60a5fa", "#fb7185", "#2dd4bf", "#c084fc", "#fbbf24", "#94a3b8"];

  // Everything a person (or a test) may want to read, on window.
  const A = window.auralize = {
    connected: false, started: false, hello: null, mode: "live", finished: false,
    records: [], steps: 0, gradNames: [], gradLayers: 0, mix: {}, acks: [], errors: [],
    worklet: { framesPlayed: 0, underruns: 0, buffered: 0, skipped: 0, state: "stopped" },
    blocks: 0, gaps: 0, serverDrops: 0, clients: 0, levelRms: 0, rttMs: null,
    lastBlockEnd: 0, sampleRate: 0, playing: true, durationS: null,
    scoreTimeS: 0, backlogS: 0, charts: { lossPoints: 0, gradSeries: 0, gradPoints: 0 },
    announcements: [], captions: [],
  };
  let pendingNews = []; // announcements waiting for their moment in the audio
  let captionT = null; // a replay's captions are said as the hearing time passes them

  const token = new URLSearchParams(location.search).get("token");
  let net = null, open = false, ctx = null, node = null, analyser = null, msgId = 0;
  let retryMs = 500, chartsDirty = true, lastChartDraw = 0;

  // ---------------------------------------------------------------- socket
  function socketUrl() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams();
    if (token) q.set("token", token);
    if (A.started) q.set("audio", "1");
    const qs = q.toString();
    return `${proto}//${location.host}/ws${qs ? "?" + qs : ""}`;
  }

  function setConn(state, text) {
    const el = $("conn");
    el.dataset.state = state;
    $("conn-text").textContent = text || state;
  }

  // The socket lives in a worker (net.js): PCM goes from there straight to the
  // AudioWorklet, so nothing drawn on this page can delay the audio.
  function connect() {
    setConn("connecting", "connecting");
    if (!net) {
      net = new Worker("static/net.js");
      net.onmessage = (e) => {
        const m = e.data;
        if (m.type === "text") onText(JSON.parse(m.text));
        else if (m.type === "pcmstat") {
          A.blocks = m.blocks; A.gaps = m.gaps; A.lastBlockEnd = m.lastBlockEnd;
        } else if (m.type === "open") {
          open = true; A.connected = true; retryMs = 500;
          setConn("live", A.mode === "replay" ? "connected" : "live");
        } else if (m.type === "close") onClose();
      };
      net.postMessage({ type: "audio", on: A.started });
    }
    net.postMessage({ type: "connect", url: socketUrl() });
  }

  function onClose() {
    open = false;
    A.connected = false;
    if (node) node.port.postMessage({ type: "idle", idle: true });
    if (A.finished) { setConn("finished", "run finished"); return; }
    setConn("closed", "reconnecting…");
    setTimeout(connect, retryMs);
    retryMs = Math.min(5000, retryMs * 2);
  }

  function send(doc) {
    if (!net || !open) return null;
    doc.id = ++msgId;
    net.postMessage({ type: "send", text: JSON.stringify(doc) });
    return doc.id;
  }

  function onText(m) {
    switch (m.type) {
      case "hello":
        A.hello = m; A.mode = m.mode; A.sampleRate = m.sample_rate; A.finished = m.finished;
        A.channels = m.channels || 1;
        if (net) net.postMessage({ type: "channels", n: A.channels });
        A.playing = m.playing; A.durationS = m.duration_s ?? null;
        A.records = []; A.steps = 0; A.gradNames = []; A.gradLayers = 0;
        $("grad-note").hidden = true;
        $("mode").textContent = m.mode;
        $("title").textContent = m.title || "";
        $("k-rate").textContent = `${(m.sample_rate / 1000).toFixed(1)} kHz`;
        $("transport").hidden = m.mode !== "replay";
        setConn("live", m.mode === "replay" ? "connected" : "live");
        setMix(m.mix);
        updateTransport(m);
        chartsDirty = true;
        break;
      case "history": for (const r of m.records) addRecord(r); chartsDirty = true; break;
      case "step": addRecord(m.record); chartsDirty = true; break;
      case "mix": setMix(m.mix); break;
      case "ack":
        A.acks.push(m); if (A.acks.length > 100) A.acks.shift();
        if (!m.ok) { A.errors.push(m.error); note(`server: ${m.error}`); }
        if (m.of === "ping" && m.t) A.rttMs = performance.now() - m.t;
        break;
      case "stats":
        A.serverDrops = m.dropped_blocks; A.clients = m.clients; A.levelRms = m.level_rms;
        A.scoreTimeS = m.score_time_s; A.backlogS = m.backlog_s || 0; A.playing = m.playing;
        if (m.finished && !A.finished) finished();
        break;
      case "transport": updateTransport(m); break;
      case "flush":
        if (net) net.postMessage({ type: "resync" });
        if (node) node.port.postMessage({ type: "flush" });
        break;
      case "finished": finished(); break;
      case "announce": pendingNews.push(m); releaseNews(); break;
      case "captions": A.captions = m.captions; captionT = null; break;
      case "error": A.errors.push(m.error); break;
    }
  }

  function finished() {
    A.finished = true;
    setConn("finished", "run finished");
    note("training finished — replay it with: auralize serve --run DIR");
  }

  // ---------------------------------------------------------------- audio
  async function start() {
    const btn = $("start");
    if (A.started) { // stop listening (the run goes on)
      A.started = false;
      send({ type: "audio", on: false });
      net.postMessage({ type: "audio", on: false });
      if (ctx) await ctx.suspend();
      btn.innerHTML = '<span aria-hidden="true">&#9654;</span> Start audio';
      btn.classList.add("primary");
      $("spec-hint").textContent = "press Start to listen";
      announce("audio off");
      return;
    }
    if (!A.sampleRate) { note("waiting for the server…"); return; }
    try {
      if (!ctx) {
        ctx = new AudioContext({ sampleRate: A.sampleRate, latencyHint: "interactive" });
        await ctx.audioWorklet.addModule("static/worklet.js");
        node = new AudioWorkletNode(ctx, "auralize-pcm-player", {
          numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2],
          processorOptions: { targetS: 0.35, maxS: 2.0, capacityS: 8 },
        });
        node.port.onmessage = (e) => { Object.assign(A.worklet, e.data); };
        analyser = ctx.createAnalyser();
        analyser.fftSize = 4096;
        analyser.smoothingTimeConstant = 0.0;
        analyser.minDecibels = -110;
        analyser.maxDecibels = -20;
        node.connect(ctx.destination);
        node.connect(analyser);
        const pipe = new MessageChannel(); // worker -> worklet, bypassing this thread
        node.port.postMessage({ type: "port", port: pipe.port1 }, [pipe.port1]);
        net.postMessage({ type: "port", port: pipe.port2 }, [pipe.port2]);
      } else {
        node.port.postMessage({ type: "flush" });
      }
      await ctx.resume();
      A.started = true;
      node.port.postMessage({ type: "idle", idle: !A.playing });
      net.postMessage({ type: "audio", on: true });
      send({ type: "audio", on: true });
      btn.innerHTML = '<span aria-hidden="true">&#9632;</span> Stop audio';
      btn.classList.remove("primary");
      announce("audio on");
      $("spec-hint").textContent = `${ctx.sampleRate} Hz · ${analyser.fftSize}-point FFT`;
    } catch (err) {
      note(`audio could not start: ${err}`);
      A.errors.push(String(err));
    }
  }

  // ---------------------------------------------------------------- mixer
  function voiceColor(name) {
    const names = Object.keys(A.mix);
    const i = Math.max(0, names.indexOf(name));
    return PALETTE[(i + 3) % PALETTE.length];
  }

  function setMix(mix) {
    A.mix = mix || {};
    const box = $("mixer");
    const names = Object.keys(A.mix);
    if (!names.length) { box.innerHTML = '<p class="empty">waiting for voices…</p>'; return; }
    const empty = box.querySelector(".empty");
    if (empty) empty.remove();
    for (const name of names) {
      const v = A.mix[name];
      let row = box.querySelector(`[data-voice="${CSS.escape(name)}"]`);
      if (!row) row = makeVoiceRow(box, name);
      row.querySelector(".mute").classList.toggle("on", v.mute);
      row.querySelector(".solo").classList.toggle("on", v.solo);
      row.querySelector(".mute").setAttribute("aria-pressed", String(!!v.mute));
      row.querySelector(".solo").setAttribute("aria-pressed", String(!!v.solo));
      row.classList.toggle("silent", v.effective_gain === 0);
      const slider = row.querySelector("input");
      if (document.activeElement !== slider) slider.value = v.gain;
      row.querySelector(".db").textContent = dbText(v.gain);
    }
  }

  function dbText(g) {
    return g <= 0 ? "−∞ dB" : `${(20 * Math.log10(g)).toFixed(1)} dB`;
  }

  function makeVoiceRow(box, name) {
    const row = document.createElement("div");
    row.className = "voice";
    row.dataset.voice = name;
    const n = box.querySelectorAll(".voice").length + 1;
    row.setAttribute("role", "group");
    row.innerHTML = `<span class="sw" aria-hidden="true"></span><span class="vname"></span>
      <button type="button" class="mute" aria-pressed="false">M</button>
      <button type="button" class="solo" aria-pressed="false">S</button>
      <input type="range" min="0" max="2" step="0.01" value="1">
      <span class="db"></span>`;
    row.querySelector(".sw").style.background = voiceColor(name);
    row.querySelector(".vname").textContent = n <= 9 ? `${n} ${name}` : name;
    row.setAttribute("aria-label", `series ${n}: ${name}`);
    row.querySelector(".mute").setAttribute("aria-label", `mute ${name}`);
    row.querySelector(".solo").setAttribute("aria-label", `solo ${name}`);
    row.querySelector(".mute").title = n <= 9 ? `mute (Shift+${n})` : "mute";
    row.querySelector(".solo").title = n <= 9 ? `solo (${n})` : "solo";
    if (n <= 9) {
      row.querySelector(".mute").setAttribute("aria-keyshortcuts", `Shift+${n}`);
      row.querySelector(".solo").setAttribute("aria-keyshortcuts", String(n));
    }
    row.querySelector("input").setAttribute("aria-label", `${name} gain`);
    row.querySelector(".mute").onclick = () =>
      send({ type: "mix", voice: name, mute: !A.mix[name].mute });
    row.querySelector(".solo").onclick = () =>
      send({ type: "mix", voice: name, solo: !A.mix[name].solo });
    const slider = row.querySelector("input");
    slider.oninput = () => {
      row.querySelector(".db").textContent = dbText(+slider.value);
      send({ type: "mix", voice: name, gain: +slider.value });
    };
    box.appendChild(row);
    return row;
  }

  // ---------------------------------------------------------------- transport (replay)
  function fmtTime(s) {
    if (!isFinite(s) || s < 0) s = 0;
    const m = Math.floor(s / 60), r = Math.floor(s % 60);
    return `${m}:${String(r).padStart(2, "0")}`;
  }

  function updateTransport(m) {
    if (A.mode !== "replay") return;
    if (m.duration_s != null) A.durationS = m.duration_s;
    if (m.playing != null) A.playing = m.playing;
    if (m.score_time_s != null) A.scoreTimeS = m.score_time_s;
    $("play").innerHTML = A.playing ? "&#10074;&#10074; Pause" : "&#9654; Play";
    if (node) node.port.postMessage({ type: "idle", idle: !A.playing });
  }

  function seekTo(t) {
    send({ type: "transport", action: "seek", t_s: t, play: A.playing });
  }

  // ---------------------------------------------------------------- records
  // A live run of any length keeps at most MAX_RECORDS chart points: when full,
  // each four neighbours become their lowest and highest loss (spikes stay visible),
  // as the server's history does (web/history.py).
  const MAX_RECORDS = 8000;
  function thinRecords(rs) {
    const out = [];
    for (let i = 0; i < rs.length; i += 4) {
      const group = rs.slice(i, i + 4);
      const key = (r) => (r.loss == null ? NaN : r.loss);
      let lo = group[0], hi = group[0];
      for (const r of group) {
        if (!(key(r) >= key(lo))) lo = r;
        if (!(key(r) <= key(hi))) hi = r;
      }
      const bad = group.find((r) => r.nonfinite);
      const keep = [...new Set([lo, hi, bad].filter(Boolean))].sort((a, b) => a.step - b.step);
      const last = group[group.length - 1];
      keep[keep.length - 1] = Object.assign({}, keep[keep.length - 1],
        { metrics: Object.assign({}, ...group.map((r) => r.metrics || {})),
          epoch_end: group.some((r) => r.epoch_end), epoch: last.epoch });
      out.push(...keep);
    }
    return out;
  }

  function addRecord(r) {
    A.records.push(r);
    if (A.records.length > MAX_RECORDS) A.records = thinRecords(A.records);
    A.steps = Math.max(A.steps + 1, A.records.length);
    for (const name of Object.keys(r.grad_norms || {})) {
      if (!A.gradNames.includes(name)) A.gradNames.push(name);
    }
    // more layers than the chart has lines: the server sent groups (web/records.py)
    if (r.grad_layers) A.gradLayers = Math.max(A.gradLayers || 0, r.grad_layers);
  }

  function hearingTime() {
    if (!A.started || !ctx) return A.scoreTimeS;
    const buffered = (A.worklet.buffered || 0) / A.sampleRate;
    return A.lastBlockEnd - buffered - (ctx.outputLatency || ctx.baseLatency || 0);
  }

  function recordAt(t) { // last record whose audio starts at or before t
    const rs = A.records;
    let lo = 0, hi = rs.length - 1, best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (rs[mid].t_s <= t) { best = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return best >= 0 ? rs[best] : null;
  }

  // ---------------------------------------------------------------- charts
  function fitCanvas(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(50, Math.round(c.clientWidth * dpr));
    const h = Math.max(50, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    return dpr;
  }

  function niceTicks(lo, hi, n) {
    const span = hi - lo || 1;
    const raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => span / s <= n) || mag * 10;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }

  function fmtNum(v) {
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(a >= 10 ? 1 : 2).replace(/\.?0+$/, "");
    return v.toPrecision(2);
  }

  // series: [{name, color, xs, ys, dots}]; opts: {log, cursor, xLabel}
  function drawChart(canvas, series, opts) {
    const dpr = fitCanvas(canvas);
    const g = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height;
    g.clearRect(0, 0, W, H);
    const padL = 52 * dpr, padR = 12 * dpr, padT = 10 * dpr, padB = 26 * dpr;
    const pw = W - padL - padR, ph = H - padT - padB;
    let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
    const tf = (y) => (opts.log ? (y > 0 ? Math.log10(y) : NaN) : y);
    for (const s of series) {
      for (let i = 0; i < s.xs.length; i++) {
        const y = tf(s.ys[i]);
        if (y == null || !isFinite(y)) continue;
        xmin = Math.min(xmin, s.xs[i]); xmax = Math.max(xmax, s.xs[i]);
        ymin = Math.min(ymin, y); ymax = Math.max(ymax, y);
      }
    }
    g.font = `${11 * dpr}px system-ui, sans-serif`;
    g.fillStyle = "#7d8aa5";
    if (!isFinite(xmin)) {
      g.textAlign = "center";
      g.fillText("waiting for training steps…", W / 2, H / 2);
      return 0;
    }
    if (xmax === xmin) xmax = xmin + 1;
    if (ymax === ymin) { ymax += 0.5; ymin -= 0.5; }
    const ypad = (ymax - ymin) * 0.06;
    ymin -= ypad; ymax += ypad;
    const X = (x) => padL + ((x - xmin) / (xmax - xmin)) * pw;
    const Y = (y) => padT + (1 - (y - ymin) / (ymax - ymin)) * ph;
    // grid + labels
    g.strokeStyle = "rgba(148,163,184,0.12)";
    g.lineWidth = 1;
    g.textAlign = "right"; g.textBaseline = "middle";
    const yt = opts.log
      ? niceTicks(Math.floor(ymin), Math.ceil(ymax), 5).filter((v) => Number.isInteger(v))
      : niceTicks(ymin, ymax, 5);
    for (const v of yt) {
      if (v < ymin || v > ymax) continue;
      const y = Y(v);
      g.beginPath(); g.moveTo(padL, y); g.lineTo(W - padR, y); g.stroke();
      g.fillText(opts.log ? fmtNum(Math.pow(10, v)) : fmtNum(v), padL - 6 * dpr, y);
    }
    g.textAlign = "center"; g.textBaseline = "top";
    for (const v of niceTicks(xmin, xmax, 6)) {
      const x = X(v);
      if (x > W - padR - 34 * dpr) continue; // room for the axis name
      g.beginPath(); g.moveTo(x, padT); g.lineTo(x, padT + ph); g.stroke();
      g.fillText(fmtNum(v), x, padT + ph + 6 * dpr);
    }
    g.textAlign = "right";
    g.fillText(opts.xLabel || "step", W - padR, padT + ph + 6 * dpr);
    // epoch boundaries
    if (opts.epochs) {
      g.strokeStyle = "rgba(148,163,184,0.28)";
      g.setLineDash([3 * dpr, 4 * dpr]);
      for (const x of opts.epochs) {
        g.beginPath(); g.moveTo(X(x), padT); g.lineTo(X(x), padT + ph); g.stroke();
      }
      g.setLineDash([]);
    }
    // lines (min/max per pixel column when there are many points)
    let points = 0;
    g.save();
    g.beginPath(); g.rect(padL, padT, pw, ph); g.clip();
    for (const s of series) {
      g.strokeStyle = s.color; g.fillStyle = s.color;
      g.lineWidth = (s.width || 1.6) * dpr;
      const n = s.xs.length;
      points += n;
      if (s.dots) {
        for (let i = 0; i < n; i++) {
          const y = tf(s.ys[i]);
          if (!isFinite(y)) continue;
          g.beginPath(); g.arc(X(s.xs[i]), Y(y), 3 * dpr, 0, 2 * Math.PI); g.fill();
        }
        continue;
      }
      g.beginPath();
      let pen = false;
      const stride = n > pw * 2 ? n / pw : 1;
      for (let k = 0; k < n; k += stride) {
        const i0 = Math.floor(k), i1 = Math.min(n, Math.floor(k + stride));
        let lo = Infinity, hi = -Infinity;
        for (let i = i0; i < Math.max(i1, i0 + 1); i++) {
          const y = tf(s.ys[i]);
          if (isFinite(y)) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
        }
        if (!isFinite(lo)) { pen = false; continue; }
        const x = X(s.xs[i0]);
        if (!pen) { g.moveTo(x, Y(hi)); pen = true; } else g.lineTo(x, Y(hi));
        if (lo !== hi) g.lineTo(x, Y(lo));
      }
      g.stroke();
    }
    // playhead: the step being heard
    if (opts.cursor != null && isFinite(opts.cursor)) {
      const x = X(opts.cursor);
      g.strokeStyle = "rgba(255,255,255,0.75)";
      g.lineWidth = 1.2 * dpr;
      g.beginPath(); g.moveTo(x, padT); g.lineTo(x, padT + ph); g.stroke();
    }
    g.restore();
    canvas._xmap = { padL, pw, xmin, xmax, dpr };
    return points;
  }

  function drawCharts() {
    const rs = A.records;
    const xs = rs.map((r) => r.step);
    const heard = A.started ? recordAt(hearingTime()) : null;
    const cursor = heard ? heard.step : null;
    const epochs = [];
    for (let i = 1; i < rs.length; i++) if (rs[i].epoch !== rs[i - 1].epoch) epochs.push(rs[i].step);
    const lossSeries = [{ name: "loss", color: "#5ac8fa", xs, ys: rs.map((r) => r.loss) }];
    const val = rs.filter((r) => r.metrics && r.metrics.val_loss != null);
    if (val.length) {
      lossSeries.push({ name: "val_loss", color: "#ff9f43", dots: true,
                        xs: val.map((r) => r.step), ys: val.map((r) => r.metrics.val_loss) });
    }
    A.charts.lossPoints = drawChart($("loss-chart"), lossSeries,
                                    { log: $("loss-log").checked, cursor, epochs });
    const gs = A.gradNames.map((name, i) => ({
      name, color: PALETTE[i % PALETTE.length], xs,
      ys: rs.map((r) => (r.grad_norms && name in r.grad_norms ? r.grad_norms[name] : null)),
      width: 1.3,
    }));
    A.charts.gradPoints = drawChart($("grad-chart"), gs, { log: $("grad-log").checked, cursor, epochs });
    A.charts.gradSeries = gs.length;
    const legend = $("grad-legend");
    const note = $("grad-note");
    if (A.gradLayers && note.hidden) {
      note.textContent = `${A.gradLayers} layers, charted as groups of neighbours: each line ` +
        "is the norm of its layers together (the square root of the sum of their squares)";
      note.hidden = false;
      $("grad-chart").setAttribute("aria-label", "gradient norm chart, one line per group of layers");
    }
    if (legend.childElementCount !== gs.length) {
      legend.innerHTML = "";
      for (const s of gs) {
        const item = document.createElement("span");
        const swatch = document.createElement("i");
        swatch.style.background = s.color;
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(s.name));
        legend.appendChild(item);
      }
    }
  }

  function chartClick(e) {
    if (A.mode !== "replay" || !A.records.length) return;
    const m = e.currentTarget._xmap;
    if (!m) return;
    const px = (e.offsetX * m.dpr - m.padL) / m.pw;
    const step = m.xmin + Math.max(0, Math.min(1, px)) * (m.xmax - m.xmin);
    const r = A.records.reduce((b, x) => (Math.abs(x.step - step) < Math.abs(b.step - step) ? x : b));
    seekTo(r.t_s);
  }

  // ---------------------------------------------------------------- spectrogram
  const MAGMA = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                 [245, 125, 21], [250, 193, 39], [252, 255, 164]];
  const LUT = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const p = (i / 255) * (MAGMA.length - 1), k = Math.min(MAGMA.length - 2, Math.floor(p));
    const f = p - k;
    for (let c = 0; c < 3; c++) LUT[i * 3 + c] = MAGMA[k][c] + f * (MAGMA[k + 1][c] - MAGMA[k][c]);
  }
  let specData = null, specCol = null;
  const F_LO = 40, F_HI = 12000;

  let lastSpecT = 0;
  function drawSpectrogram() {
    const c = $("spectrogram");
    const dpr = fitCanvas(c);
    const g = c.getContext("2d");
    const W = c.width, H = c.height, axis = 44 * dpr;
    if (!c._init || c._init !== `${W}x${H}`) {
      g.fillStyle = "#000004"; g.fillRect(0, 0, W, H);
      c._init = `${W}x${H}`;
      specCol = null;
    }
    // scroll by elapsed time (100 CSS px per second), not per frame: a busy page
    // draws fewer, wider columns but keeps the time axis true
    const now = performance.now();
    const dt = lastSpecT ? Math.min(500, now - lastSpecT) : 30;
    lastSpecT = now;
    const dx = Math.max(1, Math.round((dt / 1000) * 100 * dpr));
    // scroll the plot area left
    g.drawImage(c, axis + dx, 0, W - axis - dx, H, axis, 0, W - axis - dx, H);
    if (!specCol || specCol.height !== H || specCol.width !== dx) specCol = g.createImageData(dx, H);
    const px = specCol.data;
    if (analyser && A.started) {
      const bins = analyser.frequencyBinCount;
      if (!specData || specData.length !== bins) specData = new Uint8Array(bins);
      analyser.getByteFrequencyData(specData);
      const hzPerBin = ctx.sampleRate / analyser.fftSize;
      const hi = Math.min(F_HI, ctx.sampleRate / 2);
      for (let y = 0; y < H; y++) {
        const f = F_LO * Math.pow(hi / F_LO, 1 - y / (H - 1));
        const b = f / hzPerBin, b0 = Math.min(bins - 2, Math.floor(b)), fr = b - b0;
        const v = specData[b0] * (1 - fr) + specData[b0 + 1] * fr;
        for (let x = 0; x < dx; x++) {
          const o = (y * dx + x) * 4, l = Math.round(v) * 3;
          px[o] = LUT[l]; px[o + 1] = LUT[l + 1]; px[o + 2] = LUT[l + 2]; px[o + 3] = 255;
        }
      }
    } else {
      for (let o = 0; o < px.length; o += 4) { px[o] = 0; px[o + 1] = 0; px[o + 2] = 4; px[o + 3] = 255; }
    }
    g.putImageData(specCol, W - dx, 0);
    // frequency axis
    g.fillStyle = "#121826"; g.fillRect(0, 0, axis, H);
    g.font = `${10 * dpr}px system-ui, sans-serif`;
    g.fillStyle = "#7d8aa5"; g.textAlign = "right"; g.textBaseline = "middle";
    const hi = ctx ? Math.min(F_HI, ctx.sampleRate / 2) : F_HI;
    for (const f of [50, 100, 200, 500, 1000, 2000, 5000, 10000]) {
      if (f < F_LO || f > hi) continue;
      const y = (1 - Math.log(f / F_LO) / Math.log(hi / F_LO)) * (H - 1);
      g.fillText(f >= 1000 ? `${f / 1000}k` : `${f}`, axis - 6 * dpr, y);
      g.fillRect(axis - 4 * dpr, y, 3 * dpr, 1);
    }
  }

  // ---------------------------------------------------------------- status panel
  function updatePanel() {
    const sr = A.sampleRate || 1;
    const w = A.worklet;
    $("k-played").textContent = `${(w.framesPlayed / sr).toFixed(1)} s`;
    $("k-underruns").textContent = w.underruns;
    $("k-underruns").classList.toggle("bad", w.underruns > 0);
    $("k-gaps").textContent = A.gaps;
    $("k-gaps").classList.toggle("bad", A.gaps > 0);
    $("k-drops").textContent = A.serverDrops;
    $("k-drops").classList.toggle("bad", A.serverDrops > 0);
    $("k-blocks").textContent = A.blocks;
    $("k-clients").textContent = A.clients || "–";
    $("k-rtt").textContent = A.rttMs == null ? "–" : `${A.rttMs.toFixed(1)} ms`;
    const bufS = (w.buffered || 0) / sr;
    $("s-buffer").textContent = A.started ? `${Math.round(bufS * 1000)} ms` : "–";
    $("buffer-bar").style.width = `${Math.min(100, (bufS / 0.5) * 100)}%`;
    const db = A.levelRms > 0 ? 20 * Math.log10(A.levelRms) : -Infinity;
    $("s-level").textContent = isFinite(db) ? `${db.toFixed(1)} dBFS` : "silence";
    $("level-bar").style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100))}%`;
    const last = A.records[A.records.length - 1];
    if (last) {
      $("s-step").textContent = last.step.toLocaleString();
      $("s-epoch").textContent = `epoch ${last.epoch}`;
      $("s-loss").textContent = last.loss == null ? (last.nonfinite ? "NaN" : "–") : fmtNum(last.loss);
      const prev = A.records.length > 20 ? A.records[A.records.length - 21] : null;
      if (prev && prev.loss != null && last.loss != null) {
        const d = last.loss - prev.loss;
        const el = $("s-loss-delta");
        el.textContent = `${d <= 0 ? "▼" : "▲"} ${fmtNum(Math.abs(d))} over 20 steps`;
        el.className = d <= 0 ? "good" : "bad";
      }
    }
    const t = hearingTime();
    const heard = recordAt(t);
    $("s-hear").textContent = heard ? `step ${heard.step.toLocaleString()}` : "–";
    $("s-backlog").textContent = A.mode === "replay"
      ? `${fmtTime(t)} of ${fmtTime(A.durationS)}`
      : (A.backlogS > 0.5 ? `${A.backlogS.toFixed(1)} s behind training` : `at ${fmtTime(t)}`);
    if (A.mode === "replay") {
      $("t-time").textContent = `${fmtTime(t)} / ${fmtTime(A.durationS)}`;
      const seek = $("seek");
      if (document.activeElement !== seek && A.durationS) seek.value = Math.round((t / A.durationS) * 1000);
    }
  }

  function note(text) { $("log").textContent = text; }

  // ---------------------------------------------------------------- eyes-free
  // The live region says what the speech voice says, when it is heard; and
  // anything else a listener asks for (keys) or should know (mixer changes).
  function announce(text) {
    const box = $("announce");
    const p = document.createElement("p");
    p.textContent = text;
    box.appendChild(p);
    while (box.childElementCount > 30) box.firstElementChild.remove();
    A.announcements.push(text);
    if (A.announcements.length > 100) A.announcements.shift();
  }

  function releaseNews() {
    const t = hearingTime();
    if (A.mode === "replay" && A.captions && A.started) {
      // as the replay plays past a caption; a seek (a jump) says nothing
      if (captionT != null && t >= captionT && t - captionT < 1.0) {
        for (const c of A.captions) if (c.t_s > captionT && c.t_s <= t) announce(c.text);
      }
      captionT = t;
    }
    const due = pendingNews.filter((m) => !A.started || m.t_s == null || m.t_s <= t + 0.05);
    if (!due.length) return;
    pendingNews = pendingNews.filter((m) => !due.includes(m));
    for (const m of due) announce(m.text);
  }

  function currentValues() {
    const r = recordAt(hearingTime()) || A.records[A.records.length - 1];
    if (!r) return "no steps yet";
    const words = [`step ${r.step}`, `epoch ${r.epoch + 1}`];
    words.push(r.loss == null ? (r.nonfinite ? "loss not a number" : "no loss") : `loss ${fmtNum(r.loss)}`);
    for (const [k, v] of Object.entries(r.metrics || {})) {
      words.push(`${k.replace(/^val_/, "validation ").replace(/_/g, " ")} ${fmtNum(v)}`);
    }
    const soloed = Object.keys(A.mix).filter((k) => A.mix[k].solo);
    if (soloed.length) words.push(`solo ${soloed.join(" and ")}`);
    return words.join(", ");
  }

  function voiceByKey(n) { return Object.keys(A.mix)[n - 1]; }

  function toggleMix(name, what) {
    if (!name || !A.mix[name]) return;
    const on = !A.mix[name][what];
    send({ type: "mix", voice: name, [what]: on });
    announce(`${name} ${what === "solo" ? (on ? "soloed" : "unsoloed") : (on ? "muted" : "unmuted")}`);
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (e.target && e.target.tagName) || "";
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) && e.target.type !== "checkbox") return;
    const digit = /^Digit([0-9])$/.exec(e.code || "");
    if (digit) {
      const n = +digit[1];
      if (n === 0) {
        for (const name of Object.keys(A.mix)) send({ type: "mix", voice: name, solo: false, mute: false });
        announce("all series on");
      } else {
        toggleMix(voiceByKey(n), e.shiftKey ? "mute" : "solo");
      }
    } else if (e.key === "a" || e.key === "A") {
      start();
    } else if (e.key === "v" || e.key === "V") {
      announce(currentValues());
    } else if ((e.key === "p" || e.key === "P") && A.mode === "replay") {
      send({ type: "transport", action: A.playing ? "pause" : "play" });
    } else {
      return;
    }
    e.preventDefault();
  }

  // Loudest level (dBFS) the page's own audio has between lo and hi Hz, now.
  A.bandDb = (lo, hi) => {
    if (!analyser) return -Infinity;
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    const hz = ctx.sampleRate / analyser.fftSize;
    let best = -Infinity;
    for (let k = Math.ceil(lo / hz); k <= Math.min(bins.length - 1, hi / hz); k++) best = Math.max(best, bins[k]);
    return best;
  };

  // ---------------------------------------------------------------- main loop
  A.perf = { specMs: 0, chartMs: 0, panelMs: 0 }; // slowest draw of each kind
  function timed(key, fn) {
    const t0 = performance.now();
    fn();
    A.perf[key] = Math.max(A.perf[key], performance.now() - t0);
  }

  let lastSpec = 0;
  function frame(now) {
    if (now - lastSpec >= 30) { lastSpec = now; timed("specMs", drawSpectrogram); }
    if (chartsDirty || now - lastChartDraw > 250) {
      if (chartsDirty || A.started) { timed("chartMs", drawCharts); chartsDirty = false; }
      lastChartDraw = now;
    }
    requestAnimationFrame(frame);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("start").onclick = start;
    $("say").onclick = () => announce(currentValues());
    document.addEventListener("keydown", onKey);
    setInterval(releaseNews, 100);
    $("play").onclick = () => send({ type: "transport", action: A.playing ? "pause" : "play" });
    $("seek").onchange = (e) => seekTo((+e.target.value / 1000) * (A.durationS || 0));
    $("loss-log").onchange = $("grad-log").onchange = () => { chartsDirty = true; };
    $("loss-chart").onclick = chartClick;
    $("grad-chart").onclick = chartClick;
    window.addEventListener("resize", () => { chartsDirty = true; });
    connect();
    setInterval(() => timed("panelMs", updatePanel), 250);
    setInterval(() => send({ type: "ping", t: performance.now() }), 2000);
    requestAnimationFrame(frame);
  });
})();
