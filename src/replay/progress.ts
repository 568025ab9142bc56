import { SingleBar } from 'cli-progress';

/** Progress of a rebuild: events done out of a total, rate and ETA. */
export type Progress = {
  start(total: number): void;
  advance(events: number): void;
  stop(): void;
};

/**
 * A bar on a terminal (cli-progress redraws one line); on anything else (CI logs, a pipe) a plain line at
 * most every `intervalMs`, and a last one at the end, so a log holds a readable history.
 */
export function createProgress(options: {
  readonly label: string;
  readonly stream: NodeJS.WriteStream;
  readonly intervalMs?: number;
}): Progress {
  return options.stream.isTTY
    ? barProgress(options.label, options.stream)
    : lineProgress(options.label, options.stream, options.intervalMs ?? 1_000);
}

type Tally = { total: number; done: number; startedAt: number };

const rate = ({ done, startedAt }: Tally): number => {
  const seconds = (performance.now() - startedAt) / 1_000;
  return seconds > 0 ? Math.round(done / seconds) : 0;
};

function barProgress(label: string, stream: NodeJS.WriteStream): Progress {
  const tally: Tally = { total: 0, done: 0, startedAt: performance.now() };
  const bar = new SingleBar({
    stream,
    format: `${label} [{bar}] {percentage}% | {value}/{total} events | {rate} events/s | ETA {eta_formatted}`,
    etaBuffer: 50,
    hideCursor: true,
  });
  return {
    start(total) {
      Object.assign(tally, { total, done: 0, startedAt: performance.now() });
      bar.start(total, 0, { rate: 0 });
    },
    advance(events) {
      tally.done += events;
      // Writes go on while we rebuild: the total can grow past the count taken at the start.
      if (tally.done > tally.total) bar.setTotal((tally.total = tally.done));
      bar.update(tally.done, { rate: rate(tally) });
    },
    stop() {
      bar.stop();
    },
  };
}

function lineProgress(label: string, stream: NodeJS.WriteStream, intervalMs: number): Progress {
  const tally: Tally = { total: 0, done: 0, startedAt: performance.now() };
  let lastLine = 0;
  const print = () => {
    const perSecond = rate(tally);
    const percent = tally.total > 0 ? ((100 * tally.done) / tally.total).toFixed(1) : '100.0';
    const left = Math.max(0, tally.total - tally.done);
    const eta = perSecond > 0 ? `${Math.ceil(left / perSecond)} s` : '?';
    stream.write(`${label}: ${tally.done}/${tally.total} events (${percent}%), ${perSecond} events/s, ETA ${eta}\n`);
    lastLine = performance.now();
  };
  return {
    start(total) {
      Object.assign(tally, { total, done: 0, startedAt: performance.now() });
      print();
    },
    advance(events) {
      tally.done += events;
      tally.total = Math.max(tally.total, tally.done);
      if (performance.now() - lastLine >= intervalMs) print();
    },
    stop() {
      print();
    },
  };
}
