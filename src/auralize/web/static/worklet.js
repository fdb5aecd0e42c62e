// auralize PCM player: a jitter buffer in an AudioWorklet.
//
// The page posts blocks (an array of one Float32Array per channel: one is mono,
// played on both outputs; two is stereo); this processor plays them in order.
// It starts (and restarts after running dry) only once `targetS` of audio is
// buffered, fading in; when the buffer is about to run dry it fades the last
// quantum out, so a network gap is a short fade, never a click.  When the
// buffer grows past `maxS` (the page was in the background) it skips ahead to
// `targetS` with a fade-out / fade-in.  Counters are posted ~10 times a second.

class PcmPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.cap = Math.max(1 << 16, Math.round((o.capacityS || 8) * sampleRate));
    this.bufs = [new Float32Array(this.cap), new Float32Array(this.cap)]; // left, right
    this.r = 0;
    this.n = 0;
    this.target = Math.round((o.targetS || 0.25) * sampleRate);
    this.max = Math.round((o.maxS || 2.0) * sampleRate);
    this.state = "buffering"; // buffering | playing
    this.idle = false; // the server is paused / finished: running dry is no underrun
    this.fadeIn = 0; // frames of fade-in left
    this.fadeLen = 128;
    this.skipPending = false;
    this.framesPlayed = 0;
    this.underruns = 0;
    this.skipped = 0;
    this.overflow = 0;
    this.received = 0;
    this.sinceReport = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    if (m.type === "pcm") this.push(m.samples);
    else if (m.type === "port") m.port.onmessage = (e) => this.onMessage(e.data);
    else if (m.type === "idle") this.idle = !!m.idle;
    else if (m.type === "flush") { this.n = 0; this.state = "buffering"; }
    else if (m.type === "target") this.target = Math.round(m.seconds * sampleRate);
  }

  push(list) {
    const len = list[0].length;
    this.received += len;
    if (this.n + len > this.cap) { // should not happen: max << cap
      const drop = this.n + len - this.cap;
      this.r = (this.r + drop) % this.cap;
      this.n -= drop;
      this.overflow += drop;
    }
    const w = (this.r + this.n) % this.cap;
    const first = Math.min(len, this.cap - w);
    for (let c = 0; c < 2; c++) {
      const s = list[Math.min(c, list.length - 1)];
      this.bufs[c].set(s.subarray(0, first), w);
      if (first < len) this.bufs[c].set(s.subarray(first), 0);
    }
    this.n += len;
    if (this.n > this.max && this.state === "playing") this.skipPending = true;
  }

  read(outs, count) {
    const first = Math.min(count, this.cap - this.r);
    for (let c = 0; c < outs.length; c++) {
      const buf = this.bufs[Math.min(c, 1)];
      outs[c].set(buf.subarray(this.r, this.r + first), 0);
      if (first < count) outs[c].set(buf.subarray(0, count - first), first);
    }
    this.r = (this.r + count) % this.cap;
    this.n -= count;
  }

  scale(outs, gain) { // gain(i): the factor of frame i, on every channel
    for (let c = 0; c < outs.length; c++) {
      const ch = outs[c];
      for (let i = 0; i < ch.length; i++) ch[i] *= gain(i);
    }
  }

  process(inputs, outputs) {
    const out = outputs[0];
    const N = out[0].length;
    if (this.state === "buffering") {
      for (const ch of out) ch.fill(0);
      if (this.n >= this.target) {
        this.state = "playing";
        this.fadeIn = this.fadeLen * 2;
      }
    }
    if (this.state === "playing") {
      if (this.n >= N) {
        this.read(out, N);
        this.framesPlayed += N;
        if (this.fadeIn > 0) {
          const total = this.fadeLen * 2, left = this.fadeIn;
          this.scale(out, (i) => (i < left ? 1 - (left - i) / total : 1));
          this.fadeIn = Math.max(0, left - N);
        }
        const runningDry = this.n < N;
        if (runningDry || this.skipPending) {
          this.scale(out, (i) => 1 - (i + 1) / N); // fade out this quantum
          if (this.skipPending) {
            const drop = Math.max(0, this.n - this.target);
            this.r = (this.r + drop) % this.cap;
            this.n -= drop;
            this.skipped += drop;
            this.skipPending = false;
            this.fadeIn = this.fadeLen * 2;
          }
          if (runningDry) {
            this.state = "buffering";
            if (!this.idle) this.underruns += 1;
          }
        }
      } else { // cannot happen after the look-ahead above, kept for safety
        for (const ch of out) ch.fill(0);
        this.state = "buffering";
        if (!this.idle) this.underruns += 1;
      }
    }
    this.sinceReport += N;
    if (this.sinceReport >= sampleRate / 10) {
      this.sinceReport = 0;
      this.port.postMessage({
        framesPlayed: this.framesPlayed, underruns: this.underruns, buffered: this.n,
        skipped: this.skipped, overflow: this.overflow, received: this.received,
        state: this.state, time: currentTime,
      });
    }
    return true;
  }
}

registerProcessor("auralize-pcm-player", PcmPlayer);
