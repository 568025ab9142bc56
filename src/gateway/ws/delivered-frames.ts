import { z } from 'zod';
import { eventFrameSchema, newMessageFrame, type EventFrame } from '../../delivery/event-frames.js';

/**
 * What arrives for a user's sockets: event frames from the fan-out (with `seq` and `cursor`) on the delivery
 * subject; on the signal subject, from gateways, ephemeral `typing` and `presence` frames and the fast-path
 * copies of `new_message` (published by the sender's gateway after its append commits; the delivery gate sends
 * one only as the next seq of its conversation). Each subject is validated with its own schema at this
 * boundary (delivery-subscriptions.ts).
 */

export const typingFrame = z.object({
  type: z.literal('typing'),
  conversation_id: z.string().min(1),
  timestamp: z.string(),
  data: z.object({ user_id: z.number().int(), is_typing: z.boolean() }),
});

export const presenceFrame = z.object({
  type: z.literal('presence'),
  timestamp: z.string(),
  data: z.object({ user_id: z.number().int(), online: z.boolean(), last_seen_at: z.string().nullable() }),
});

/** What the signal subject carries, from gateways: ephemeral frames, and fast-path copies of new messages. */
export const signalFrame = z.union([typingFrame, presenceFrame, newMessageFrame]);

export type SignalFrame = z.infer<typeof signalFrame>;

export const deliveredFrame = z.union([eventFrameSchema, signalFrame]);

export type DeliveredFrame = z.infer<typeof deliveredFrame>;

export const isEventFrame = (frame: DeliveredFrame): frame is EventFrame => frame.type !== 'typing' && frame.type !== 'presence';
