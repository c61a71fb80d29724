// Child of blocked.test.ts: arms a guard of BLOCKED_MS, then either blocks the main thread for good
// (MODE=block: Atomics.wait, as a native deadlock would) or keeps it busy with honest async work
// (MODE=async) and disarms.
import { blockedThreadGuard } from '@duet/sim';

const guard = blockedThreadGuard(Number(process.env.BLOCKED_MS));
guard.arm('seed 4711; replay / 重放: npx duet sim --seed 4711');
if (process.env.MODE === 'block') {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  process.stdout.write('woke up\n');
} else {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 100));
  guard.disarm();
  // Disarmed: blocked again, longer than the limit, and nothing happens.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_500);
  process.stdout.write('done\n');
}
