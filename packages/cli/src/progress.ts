/**
 * A progress indicator on stderr: a redrawn bar when stderr is a terminal, otherwise a plain line at
 * every tenth of the way (CI logs keep each line, so a redrawn bar would fill them with noise).
 */

export interface ProgressSink {
  readonly isTTY: boolean;
  write(text: string): unknown;
}

const BAR_CHARS = 30;

export class Progress {
  private lastTenth = -1;
  private lastDrawMs = 0;
  private drawn = false;

  constructor(
    private readonly sink: ProgressSink,
    private readonly label: string,
    /** Redraw at most this often on a terminal: drawing costs more than a simulated minute. */
    private readonly minRedrawMs = 100,
  ) {}

  /** Reports `done` of `total`; `extra` is appended (e.g. the current seed's minutes). */
  update(done: number, total: number, extra = ''): void {
    const frac = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
    if (this.sink.isTTY) {
      const now = Date.now();
      if (done < total && now - this.lastDrawMs < this.minRedrawMs) return;
      this.lastDrawMs = now;
      const filled = Math.round(frac * BAR_CHARS);
      const bar = `${'█'.repeat(filled)}${'░'.repeat(BAR_CHARS - filled)}`;
      this.sink.write(`\r\x1b[2K${this.label} ${bar} ${done}/${total} ${Math.floor(frac * 100)}%${extra === '' ? '' : ` ${extra}`}`);
      this.drawn = true;
      return;
    }
    const tenth = Math.floor(frac * 10);
    if (tenth === this.lastTenth) return;
    this.lastTenth = tenth;
    this.sink.write(`${this.label} ${done}/${total} (${tenth * 10}%)${extra === '' ? '' : ` ${extra}`}\n`);
  }

  /** Writes a line of its own: on a terminal it replaces the bar, which the next update redraws. */
  log(line: string): void {
    if (this.sink.isTTY && this.drawn) {
      this.sink.write('\r\x1b[2K');
      this.drawn = false;
      this.lastDrawMs = 0;
    }
    this.sink.write(`${line}\n`);
  }

  /** Ends the bar's line so what follows starts clean. */
  done(): void {
    if (this.sink.isTTY && this.drawn) this.sink.write('\n');
    this.drawn = false;
  }
}
