import { z } from 'zod';
import { eventFrameSchema, type EventFrame } from '../../delivery/event-frames.js';

/**
 * What arrives for a user's sockets: event frames from the fan-out (with `seq` and `cursor`) on the delivery
 * subject, and ephemeral `typing` frames from gateways on the signal subject. Each subject is validated with
 * its own schema at this boundary (delivery-subscriptions.ts); the text is then forwarded as is.
 */

export const typingFrame = z.object({
  type: z.literal('typing'),
  conversation_id: z.string().min(1),
  timestamp: z.string(),
  data: z.object({ user_id: z.number().int(), is_typing: z.boolean() }),
});

export const deliveredFrame = z.union([eventFrameSchema, typingFrame]);

export type DeliveredFrame = z.infer<typeof deliveredFrame>;

export const isEventFrame = (frame: DeliveredFrame): frame is EventFrame => frame.type !== 'typing';
