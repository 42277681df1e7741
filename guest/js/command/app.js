// A wasi:cli/command in JavaScript (ComponentizeJS): reports which of the
// globals a socket program would need the StarlingMonkey runtime gives JS.
const wanted = ['fetch', 'WebSocket', 'Deno', 'Bun', 'process', 'require', 'net',
  'TCPSocket', 'navigator', 'connect', 'XMLHttpRequest', 'EventSource'];

export const run = {
  run() {
    const present = wanted.filter((name) => typeof globalThis[name] !== 'undefined');
    const absent = wanted.filter((name) => typeof globalThis[name] === 'undefined');
    console.log(JSON.stringify({
      globals: Object.getOwnPropertyNames(globalThis).sort(),
      present,
      absent,
    }));
  },
};
