/**
 * Draws a QR code on a canvas, one solid square per module with the standard four-module quiet
 * zone, so any camera (and the tests' decoder reading a screenshot) reads it back exactly.
 */
import { encodeQR } from 'qr';

/** Aimed width of the drawn code in CSS pixels; the module size is a whole number of pixels. */
const QR_TARGET_PX = 300;
const QUIET_MODULES = 4;

export function drawQr(canvas: HTMLCanvasElement, text: string): void {
  // Medium error correction: survives a scratched screen and glare; `DU1:` + Base45 is QR alphanumeric.
  const modules = encodeQR(text, 'raw', { ecc: 'medium', border: QUIET_MODULES });
  const n = modules.length;
  const scale = Math.max(2, Math.floor(QR_TARGET_PX / n));
  canvas.width = n * scale;
  canvas.height = n * scale;
  const g = canvas.getContext('2d');
  if (g === null) return;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = '#000';
  for (let y = 0; y < n; y++) {
    const row = modules[y];
    if (row === undefined) continue;
    for (let x = 0; x < n; x++) if (row[x] === true) g.fillRect(x * scale, y * scale, scale, scale);
  }
  canvas.dataset.drawn = text;
}
