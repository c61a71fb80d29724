/**
 * Scanner input: a keyboard-wedge scanner (a burst of keystrokes ending in Enter, much faster than a
 * person types) and the camera (frames drawn to a canvas and read by the `qr` decoder about every
 * 150 ms). Both hand over text only; what it means is the terminal core's business.
 */
import decodeQR from 'qr/decode.js';

/** A wedge burst: at least this many characters… */
export const WEDGE_MIN_CHARS = 8;
/** …typed at most this many milliseconds per key on average (people take 100 ms or more)… */
export const WEDGE_MEAN_GAP_MS = 35;
/** …and with no single pause longer than this (a busy machine may delay a key or two). */
export const WEDGE_MAX_GAP_MS = 200;
/** Longest text taken from any scanner; anything longer is cut off here and refused by the core. */
export const SCAN_TEXT_MAX = 4096;

/** Listens for wedge bursts on the document while active; ignores typing into fields. Returns a stop function. */
export function listenWedge(onScan: (text: string) => void): () => void {
  let buffer = '';
  let first = 0;
  let last = 0;
  const onKey = (ev: KeyboardEvent): void => {
    const target = ev.target as HTMLElement | null;
    if (target !== null && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA')) return;
    const now = performance.now();
    if (now - last > WEDGE_MAX_GAP_MS) {
      buffer = '';
      first = now;
    }
    last = now;
    if (ev.key === 'Enter') {
      const text = buffer;
      buffer = '';
      last = 0; // the next key starts a new burst
      const meanGap = (now - first) / Math.max(1, text.length);
      if (text.length >= WEDGE_MIN_CHARS && meanGap <= WEDGE_MEAN_GAP_MS) {
        ev.preventDefault();
        onScan(text.slice(0, SCAN_TEXT_MAX));
      }
      return;
    }
    if (ev.key.length === 1 && buffer.length < SCAN_TEXT_MAX) buffer += ev.key;
  };
  document.addEventListener('keydown', onKey, true);
  return () => document.removeEventListener('keydown', onKey, true);
}

export type CameraError = 'unsupported' | 'denied' | 'failed';

/** Longest side of the frame handed to the decoder: enough for a phone's code, cheap to scan. */
const FRAME_MAX = 720;
export const SCAN_EVERY_MS = 150;

/**
 * Starts the camera into `video`, reads a frame every 150 ms, and calls onScan once with the first
 * QR text found, stopping the camera. Returns a stop function (also stops the camera).
 */
export async function startCamera(
  video: HTMLVideoElement,
  onScan: (text: string) => void,
): Promise<{ ok: true; stop: () => void } | { ok: false; error: CameraError; detail: string }> {
  if (navigator.mediaDevices?.getUserMedia === undefined) return { ok: false, error: 'unsupported', detail: 'no getUserMedia' };
  let stream: MediaStream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  } catch (e) {
    const name = e instanceof DOMException ? e.name : '';
    return { ok: false, error: name === 'NotAllowedError' ? 'denied' : 'failed', detail: String(e) };
  }
  video.srcObject = stream;
  video.muted = true;
  video.playsInline = true;
  await video.play().catch(() => undefined);
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  };
  let busy = false;
  const timer = setInterval(() => {
    if (stopped || busy || ctx === null || video.videoWidth === 0) return;
    busy = true;
    try {
      const scale = Math.min(1, FRAME_MAX / Math.max(video.videoWidth, video.videoHeight));
      const width = Math.max(1, Math.round(video.videoWidth * scale));
      const height = Math.max(1, Math.round(video.videoHeight * scale));
      canvas.width = width;
      canvas.height = height;
      ctx.drawImage(video, 0, 0, width, height);
      const image = ctx.getImageData(0, 0, width, height);
      let text: string | undefined;
      try {
        text = decodeQR({ width, height, data: image.data });
      } catch {
        // no code in this frame
      }
      if (text !== undefined && text.length > 0) {
        stop();
        onScan(text.slice(0, SCAN_TEXT_MAX));
      }
    } finally {
      busy = false;
    }
  }, SCAN_EVERY_MS);
  return { ok: true, stop };
}
