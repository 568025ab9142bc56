import { z } from 'zod';
import { eventFrameSchema, type EventFrame } from '../../delivery/event-frames.js';

/**
 * What arrives on a user's delivery subject: event frames from the fan-out (with `seq` and `cursor`) and
 * ephemeral `typing` frames from gateways. Validated at this boundary; the text is then forwarded as is.
 */

const typingFrame = z.object({
  type: z.literal('typing'),
  conversation_id: z.string().min(1),
  timestamp: z.string(),
  data: z.object({ user_id: z.number().int(), is_typing: z.boolean() }),
});

export const deliveredFrame = z.union([eventFrameSchema, typingFrame]);

export type DeliveredFrame = z.infer<typeof deliveredFrame>;

export const isEventFrame = (frame: DeliveredFrame): frame is EventFrame => frame.type !== 'typing';
