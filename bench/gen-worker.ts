/**
 * Worker thread that encodes batches, so pre-generation uses both cores and a top-up during
 * the run does not stall the load loop's event loop.
 * Protocol: receives {from, count}; answers {from, bodies} with bodies[i] = batch from+i.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { encodeBatch, loadSamples, type RunSpec } from './payloads.js';

export interface GenRequest { readonly from: number; readonly count: number }
export interface GenReply { readonly from: number; readonly bodies: Uint8Array[] }

const run = workerData as RunSpec;
const samples = loadSamples(run.samplesDir);
const port = parentPort;
if (port === null) throw new Error('gen-worker must run as a worker thread');

port.on('message', (req: GenRequest) => {
  const bodies: Uint8Array[] = [];
  for (let i = 0; i < req.count; i++) bodies.push(encodeBatch(samples, run, req.from + i));
  const reply: GenReply = { from: req.from, bodies };
  port.postMessage(reply);
});
