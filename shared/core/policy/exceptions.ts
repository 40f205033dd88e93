/** Exceptions (exceptions.yaml and the store). OWNER: decide. Placeholder until the decide work lands. */
import { z } from 'zod';

export const ExceptionSchema = z.looseObject({ id: z.string() });
export type RiskException = z.infer<typeof ExceptionSchema>;
