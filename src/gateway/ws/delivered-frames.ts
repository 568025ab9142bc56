import { z } from 'zod';
import { eventFrameSchema, newMessageFrame, type EventFrame, type NewMessageFrame } from '../../delivery/event-frames.js';
import { parseFeedPosition, type FeedPosition } from '../../event-store/recorded-event.js';

/**
 * What arrives for a user's sockets: event frames from the fan-out (with `seq` and `cursor`) on the delivery
 * subject; on the signal subject, from gateways, ephemeral `typing` and `presence` frames and the fast-path
 * copies of `new_message` (published by the sender's gateway after its append commits; the delivery gate sends
 * one only when it is next on its socket). Each subject is validated with its own schema at this boundary
 * (delivery-subscriptions.ts).
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

/** A frame that lives only while it is sent: typing and presence, published by gateways. */
export type EphemeralFrame = z.infer<typeof typingFrame> | z.infer<typeof presenceFrame>;

/**
 * A fast-path copy: the `new_message` frame, with where its conversation's event before it is in the feed
 * (`formatFeedPosition`; null when unknown). The receiving gateway takes `previous` off before the frame goes
 * to its sockets (`splitFastPathCopy`).
 */
export const fastPathCopy = newMessageFrame.extend({ previous: z.string().nullable() });

export type FastPathCopy = z.infer<typeof fastPathCopy>;

/** The frame of a fast-path copy, and the position of the event before it (null: unknown or unreadable). */
export function splitFastPathCopy(copy: FastPathCopy): { readonly frame: NewMessageFrame; readonly previous: FeedPosition | null } {
  const { previous, ...frame } = copy;
  return { frame, previous: previous === null ? null : parseFeedPosition(previous) };
}

/** What the signal subject carries, from gateways: ephemeral frames, and fast-path copies of new messages. */
export const signalFrame = z.union([typingFrame, presenceFrame, fastPathCopy]);

export type SignalFrame = z.infer<typeof signalFrame>;

export const deliveredFrame = z.union([eventFrameSchema, signalFrame]);

export type DeliveredFrame = z.infer<typeof deliveredFrame>;

export const isEventFrame = (frame: DeliveredFrame): frame is EventFrame => frame.type !== 'typing' && frame.type !== 'presence';
