/**
 * Decision sounds: one high beep for accepted, two low ones for refused. The audio context is made
 * on the cashier's first tap (browsers allow sound only after a gesture); until then, silence.
 */
let audio: AudioContext | undefined;

/** Call from a tap handler: makes (or wakes) the audio context. */
export function armSound(): void {
  try {
    audio ??= new AudioContext();
    if (audio.state === 'suspended') void audio.resume();
  } catch {
    audio = undefined;
  }
}

export function decisionSound(accepted: boolean): void {
  const ctx = audio;
  if (ctx === undefined || ctx.state !== 'running') return;
  const beeps = accepted
    ? [[1_320, 0, 0.15]]
    : [
        [330, 0, 0.18],
        [330, 0.25, 0.18],
      ];
  for (const [freq = 440, start = 0, length = 0.1] of beeps) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = freq;
    gain.gain.value = 0.15;
    osc.connect(gain).connect(ctx.destination);
    osc.start(ctx.currentTime + start);
    osc.stop(ctx.currentTime + start + length);
  }
}
