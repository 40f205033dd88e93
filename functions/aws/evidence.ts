/** Evidence: one immutable record per pipeline step, into the Object Lock bucket (S3 compliance mode). */

import { Logger } from '@aws-lambda-powertools/logger';
import { createAwsEvidenceStore, createAwsPorts } from '../../shared/adapters/wiring/aws.js';
import { createEvidenceStage } from '../../shared/core/evidence/stage.js';
import { stageFunction } from './middleware/stage-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-evidence' }) });

export const handler = stageFunction(ports, 'evidence', async (p) => [
  createEvidenceStage({
    store: p.store,
    evidence: await createAwsEvidenceStore(p),
    clock: p.clock,
    log: p.log,
  }),
]);
