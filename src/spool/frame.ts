import { crc32 } from 'node:zlib';

/**
 * One spool record on disk: a fixed header, then the payload.
 *
 *   0  u32  magic "ESP1"          lets recovery tell a record start from garbage
 *   4  u32  payload length
 *   8  u32  CRC-32 of bytes 12..end (seq, targets and payload: a record copied to the wrong
 *           place, or a torn write, fails the check)
 *  12  u32  seq, low 32 bits      monotonic record number, never reused
 *  16  u32  seq, high 21 bits
 *  20  u8   targets               bit mask of the sinks this record is for
 *  21  u24  event count           lets recovery measure each sink's backlog without decoding
 *  24  payload
 */
export const FRAME_MAGIC = 0x31505345;
export const FRAME_HEADER_BYTES = 24;
/** A record larger than this is taken as corruption, not allocated. */
export const MAX_PAYLOAD_BYTES = 512 * 1024 * 1024;

export interface FrameHeader {
  readonly seq: number;
  readonly targets: number;
  readonly eventCount: number;
  readonly payloadLength: number;
}

/** Most events one record can say it holds (the u24 field). */
export const MAX_EVENTS_PER_RECORD = 0xff_ffff;

/**
 * The header of the frame holding `payload`; the frame is the header followed by the payload,
 * written side by side (one `writev`) so that the payload, often hundreds of KiB, is not copied.
 */
export function frameHeader(seq: number, targets: number, eventCount: number, payload: Buffer): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32LE(FRAME_MAGIC, 0);
  header.writeUInt32LE(payload.length, 4);
  header.writeUInt32LE(seq >>> 0, 12);
  header.writeUInt32LE(Math.floor(seq / 0x1_0000_0000), 16);
  header.writeUInt8(targets, 20);
  header.writeUIntLE(eventCount, 21, 3);
  header.writeUInt32LE(crc32(payload, crc32(header.subarray(12))), 8);
  return header;
}

export type FrameCheck =
  | { readonly kind: 'ok'; readonly header: FrameHeader; readonly frameLength: number }
  /** Not enough bytes yet (or a torn tail, if this is the end of the file). */
  | { readonly kind: 'incomplete'; readonly needed: number }
  | { readonly kind: 'corrupt'; readonly reason: string };

/** Checks the frame starting at `offset` of `buf` without copying it. */
export function checkFrame(buf: Buffer, offset: number): FrameCheck {
  const available = buf.length - offset;
  if (available < FRAME_HEADER_BYTES) return { kind: 'incomplete', needed: FRAME_HEADER_BYTES };
  if (buf.readUInt32LE(offset) !== FRAME_MAGIC) return { kind: 'corrupt', reason: 'bad magic' };
  const payloadLength = buf.readUInt32LE(offset + 4);
  if (payloadLength > MAX_PAYLOAD_BYTES) return { kind: 'corrupt', reason: `implausible length ${payloadLength}` };
  const frameLength = FRAME_HEADER_BYTES + payloadLength;
  if (available < frameLength) return { kind: 'incomplete', needed: frameLength };
  const expected = buf.readUInt32LE(offset + 8);
  if (crc32(buf.subarray(offset + 12, offset + frameLength)) !== expected) return { kind: 'corrupt', reason: 'checksum mismatch' };
  const seq = buf.readUInt32LE(offset + 12) + buf.readUInt32LE(offset + 16) * 0x1_0000_0000;
  return { kind: 'ok', header: { seq, targets: buf.readUInt8(offset + 20), eventCount: buf.readUIntLE(offset + 21, 3), payloadLength }, frameLength };
}

export function framePayload(buf: Buffer, offset: number, header: FrameHeader): Buffer {
  return buf.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + header.payloadLength);
}
