/**
 * An SQS-fed stage function: each record is one closeloop event (EventBridge envelope in the body);
 * every stage that handles its type runs, and the follow-up events go back on the hub bus. Stages
 * re-read the case and are idempotent, so a redelivered or retried message does no harm.
 */
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { pipelineEventFromSqs } from '../../../shared/adapters/bus/sqs.js';
import type { AwsPorts } from '../../../shared/adapters/wiring/aws.js';
import type { Stage } from '../../../shared/core/pipeline/stage.js';
import { redeliverEarly } from './early-redelivery.js';
import { MetricUnit, sqsFunction } from './hub-function.js';

/**
 * @param build builds the stages once per container, on first use (config and secrets are read then).
 * @example
 * export const handler = stageFunction(ports, 'verify', async (p) => [createVerifyStage(await verifyDeps(p))]);
 */
export function stageFunction(ports: AwsPorts, name: string, build: (ports: AwsPorts) => Promise<Stage[]>) {
  let stages: Promise<Stage[]> | undefined;
  const load = () => {
    stages ??= build(ports).catch((e: unknown) => {
      stages = undefined; // a failed build (config, secret) is retried on the next record
      throw e;
    });
    return stages;
  };
  // An event that reached the stage before its case write is delivered again in seconds, not the queue's timeout.
  return sqsFunction(
    ports,
    name,
    redeliverEarly(ports, name, async function handleStageRecord(record, metrics: Metrics) {
      const event = pipelineEventFromSqs(record);
      for (const stage of await load()) {
        if (!stage.handles.includes(event.type)) continue;
        const followUps = await stage.handle(event);
        await ports.bus.publish(followUps);
        metrics.addMetric(`${stage.name}.handled`, MetricUnit.Count, 1);
      }
    }),
  );
}
