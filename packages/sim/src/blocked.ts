/**
 * The last guard of a run: a thread beside the main one that ends the process when the main thread
 * itself stops. A deadlock in native code (docs/decisions.md, "Node keys are drawn") blocks the
 * JavaScript thread, so no timer on it can fire and `watchProgress` cannot help; without this, such a
 * run would hang until CI's time limit. The main thread beats a shared counter every second; while a
 * run is armed, a counter that has not moved for `blockedMs` makes the guard write what it knows to
 * stderr (which run, how to replay it) and kill the process, so the run ends as a failure.
 */
import { Worker } from 'node:worker_threads';

/** How often the main thread beats and the guard looks, ms. */
const BEAT_MS = 1_000;

// Plain CommonJS, evaluated in the worker: it needs nothing but node itself.
const GUARD_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const cells = new Int32Array(workerData.shared);
let note = '';
parentPort.on('message', (m) => { note = String(m); });
let last = Atomics.load(cells, 0);
let since = Date.now();
setInterval(() => {
  const beat = Atomics.load(cells, 0);
  if (Atomics.load(cells, 1) === 0 || beat !== last) { last = beat; since = Date.now(); return; }
  const ms = Date.now() - since;
  if (ms < workerData.blockedMs) return;
  writeSync(2, '\\nthe simulation\\'s main thread has been blocked for ' + ms + ' ms (a deadlock in native code?); the process is killed / ' +
    '模拟主线程已阻塞 ' + ms + ' 毫秒（原生代码死锁？），进程被终止\\n' + note + '\\n');
  process.kill(process.pid, 'SIGKILL');
}, workerData.beatMs);
`;

export class BlockedThreadGuard {
  private readonly cells = new Int32Array(new SharedArrayBuffer(8));
  private readonly worker: Worker;
  private readonly beat: ReturnType<typeof setInterval>;

  constructor(readonly blockedMs: number) {
    if (!Number.isSafeInteger(blockedMs) || blockedMs < 1) throw new RangeError(`blockedMs ${blockedMs}: a whole number of ms >= 1`);
    const beatMs = Math.max(10, Math.min(BEAT_MS, Math.floor(blockedMs / 4)));
    this.worker = new Worker(GUARD_SOURCE, { eval: true, workerData: { shared: this.cells.buffer, blockedMs, beatMs } });
    this.worker.unref();
    this.beat = setInterval(() => Atomics.add(this.cells, 0, 1), beatMs);
    this.beat.unref();
  }

  /**
   * From now until the matching `disarm`, a blocked main thread kills the process; `note` (e.g. the
   * replay command) is printed first. Runs at once in one process each arm it (a count).
   */
  arm(note: string): void {
    this.worker.postMessage(note);
    Atomics.add(this.cells, 0, 1);
    Atomics.add(this.cells, 1, 1);
  }

  disarm(): void {
    Atomics.sub(this.cells, 1, 1);
  }
}

const guards = new Map<number, BlockedThreadGuard>();

/** One guard per process (and per limit): its thread is made once and kept, unref'd. */
export function blockedThreadGuard(blockedMs: number): BlockedThreadGuard {
  let g = guards.get(blockedMs);
  if (g === undefined) {
    g = new BlockedThreadGuard(blockedMs);
    guards.set(blockedMs, g);
  }
  return g;
}
