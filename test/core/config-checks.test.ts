import { describe, expect, it } from 'vitest';
import { resourceGlobProblem } from '../../shared/core/config-checks.js';

describe('resourceGlobProblem', () => {
  it.each([
    'arn:aws:s3:::acme-audit-logs*',
    'arn:aws:iam::111122223333:role/*',
    'arn:aws:iam::aws:policy/ReadOnlyAccess',
    'arn:aws:ec2:us-east-1:111122223333:instance/*',
    'arn:aws-us-gov:ec2:*',
    'arn:aws:ec2:eusc-de-east-1:111122223333:instance/i-1',
    'arn:aws:ec2:us-east-1:1111*',
    'arn:*',
    '*',
    '/subscriptions/*/resourceGroups/rg/*',
    '//compute.googleapis.com/projects/acme-sandbox/global/firewalls/*',
    '*googleapis.com/x',
    'AWS::::Account:111122223333',
  ])('accepts %s, which can match', (glob) => {
    expect(resourceGlobProblem(glob)).toBeUndefined();
  });

  it.each([
    ['arn:asw:s3:::acme*', /"asw" is not an AWS partition/],
    ['ARN:aws:s3:::acme', /"arn:" in lower case/],
    ['arn:aws:S3:::acme', /"S3" is not a service/],
    ['arn:aws:s3::acme', /"acme" is not a 12-digit account id/],
    ['arn:aws:s3::acme*', /"acme" cannot begin a 12-digit account id/],
    ['arn:aws:ec2:useast1:111122223333:instance/*', /"useast1" is not a region/],
    ['arn:aws:ec2:us-east-1:11112222333:instance/*', /"11112222333" is not a 12-digit account id/],
    ['arn:aws:iam::111122223333', /at least six parts/],
    ['subscriptions/0b7e4c1a-2d3f-4a5b-9c6d-7e8f9a0b1c2d/*', /leading "\/" is missing/],
    ['compute.googleapis.com/projects/p/*', /starts with "\/\/"/],
    ['arn:aws:s3:::acme-logs *', /whitespace/],
  ])('refuses %s, which never matches', (glob, why) => {
    expect(resourceGlobProblem(glob)).toMatch(why);
  });

  it('judges only the shape where the list is matched without case', () => {
    expect(resourceGlobProblem('ARN:AWS:S3:::ACME-*', { caseInsensitive: true })).toBeUndefined();
    expect(resourceGlobProblem('ARN:ASW:S3:::ACME-*', { caseInsensitive: true })).toMatch(
      /"asw" is not an AWS partition/,
    );
  });
});
