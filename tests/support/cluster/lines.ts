/**
 * The lines a child process writes, collected as they arrive with the time each arrived, so a test
 * can wait for a line and say when it came (a client's "Disconnected", a log event).
 *
 * @module
 */

/** One line and when it arrived (`performance.now()`). */
export interface TimedLine {
  readonly at: number;
  readonly text: string;
}

/** Collect the lines of `stream` into the returned array as they arrive (until it ends). */
export function collectLines(stream: ReadableStream<Uint8Array>): TimedLine[] {
  const lines: TimedLine[] = [];
  (async () => {
    let rest = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        const parts = rest.split("\n");
        rest = parts.pop()!;
        const at = performance.now();
        for (const text of parts) lines.push({ at, text });
      }
    } catch { /* cancelled with its process */ }
    if (rest) lines.push({ at: performance.now(), text: rest });
  })();
  return lines;
}
