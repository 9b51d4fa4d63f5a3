// The microphone's samples as 16-bit PCM, for the WebSocket and for takes.
// An AudioWorklet runs on the audio thread: it averages the channels (as kws reads any
// input: kws.audio.files.to_mono) and posts blocks of BLOCK samples at the context's rate.
const BLOCK = 2048;

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Int16Array(BLOCK);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    for (let i = 0; i < frames; i++) {
      let sum = 0;
      for (const channel of channels) sum += channel[i];
      const sample = Math.max(-1, Math.min(1, sum / channels.length));
      this.block[this.filled++] = Math.round(sample * 32767);
      if (this.filled === BLOCK) {
        this.port.postMessage(this.block.buffer, [this.block.buffer]);
        this.block = new Int16Array(BLOCK);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("kws-capture", Capture);
