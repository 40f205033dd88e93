/** Evidence: one immutable record per pipeline step, into the Object Lock bucket (S3 compliance mode). */

import { Logger } from '@aws-lambda-powertools/logger';
import { S3Client } from '@aws-sdk/client-s3';
import { createAwsEvidenceStore, createAwsPorts } from '../../shared/adapters/wiring/aws.js';
import { createEvidenceStage } from '../../shared/core/evidence/stage.js';
import { stageFunction } from './middleware/stage-function.js';

const ports = createAwsPorts(process.env, { logger: new Logger({ serviceName: 'closeloop-evidence' }) });

export const handler = stageFunction(ports, 'evidence', async (p) => [
  createEvidenceStage({
    store: p.store,
    evidence: await createAwsEvidenceStore(p, new S3Client({ region: p.env.AWS_REGION })),
    clock: p.clock,
    log: p.log,
  }),
]);
