/** Ticketing policy (policy.yaml `tickets:`). OWNER: ticketing. Placeholder until the ticketing work lands. */
import { z } from 'zod';

export const TicketPolicySchema = z.looseObject({});
export type TicketPolicy = z.infer<typeof TicketPolicySchema>;
