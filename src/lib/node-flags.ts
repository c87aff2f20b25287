/**
 * V8 flags the server runs with, wherever it is launched: `npm start`, the container image, the
 * `mothership` command (its shebang), DEV_MODE's server (through NODE_OPTIONS), the tests' and the bench's child
 * servers. A test checks that package.json, the Dockerfile and the CLI agree with this list.
 *
 * `--max-semi-space-size=4` (MiB; Node 20's default lets it grow to 16): every request's parsed
 * JSON and normalized events die young, and under load V8 otherwise grows the young generation
 * to its maximum and keeps it. Measured with the bench on 2 cores (same machine, one after the
 * other): peak RSS 191 → 155 MiB at the base load, 281 → 208 MiB with 128 connections,
 * 346 → 283 MiB with 1000-message batches, at the same CPU per message. V8 reads it only at
 * start-up (v8.setFlagsFromString later has no effect), hence the command lines.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
