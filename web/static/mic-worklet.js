// Microphone samples to the main thread in 20 ms blocks (the AudioContext runs at the send rate).
class MicSender extends AudioWorkletProcessor {
  constructor() { super(); this.block = new Float32Array(Math.round(sampleRate / 50)); this.n = 0; }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) {
      for (let i = 0; i < ch.length; i++) {
        this.block[this.n++] = ch[i];
        if (this.n === this.block.length) { this.port.postMessage(this.block.slice()); this.n = 0; }
      }
    }
    return true;
  }
}
registerProcessor("mic-sender", MicSender);
