/**
 * A fake camera for browser tests: an init script that replaces navigator.mediaDevices.getUserMedia
 * with a canvas stream showing one image (a QR code, or a screenshot of the wallet page), so the
 * POS reads it through exactly the path a real camera takes (video → canvas → qr decoder).
 */
import encodeQR from 'qr';

/**
 * The script to pass to page.addInitScript / context.addInitScript. `dataUrl` is any image the
 * page can load (PNG screenshot, GIF from qrDataUrl). The image is drawn on white with a margin,
 * redrawn ten times a second so the stream keeps producing frames.
 */
export function fakeCameraScript(dataUrl: string): string {
  return `(() => {
    const src = ${JSON.stringify(dataUrl)};
    const fake = async () => {
      const img = new Image();
      img.src = src;
      await img.decode();
      const pad = 40;
      const canvas = document.createElement('canvas');
      canvas.width = img.naturalWidth + 2 * pad;
      canvas.height = img.naturalHeight + 2 * pad;
      const ctx = canvas.getContext('2d');
      const draw = () => {
        ctx.fillStyle = '#fff';
        ctx.fillRect(0, 0, canvas.width, canvas.height);
        ctx.drawImage(img, pad, pad);
      };
      draw();
      const stream = canvas.captureStream(10);
      const timer = setInterval(draw, 100);
      for (const track of stream.getVideoTracks()) track.addEventListener('ended', () => clearInterval(timer));
      window.__duetFakeCameraCalls = (window.__duetFakeCameraCalls || 0) + 1;
      return stream;
    };
    if (!navigator.mediaDevices) Object.defineProperty(navigator, 'mediaDevices', { value: {}, configurable: true });
    navigator.mediaDevices.getUserMedia = fake;
  })();`;
}

/** A QR code of `text` as a GIF data URL, scaled so a camera frame holds it comfortably. */
export function qrDataUrl(text: string, scale = 4): string {
  const gif = encodeQR(text, 'gif', { scale, border: 2 });
  return `data:image/gif;base64,${Buffer.from(gif).toString('base64')}`;
}
