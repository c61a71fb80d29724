/** Timers as a port, injected so the simulator can run the terminal and its uploader on virtual time. */
export interface Scheduler {
  /** Calls `fn` once, `ms` milliseconds from now. The returned function cancels the call and does nothing once it has run. */
  after(ms: number, fn: () => void): () => void;
}

export const systemScheduler: Scheduler = {
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};
