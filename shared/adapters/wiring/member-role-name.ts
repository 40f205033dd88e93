/**
 * An IAM role name (no path): what `CLOSELOOP_MEMBER_ROLE` may hold. Apart from member-role.ts: the wiring
 * that only checks the setting (every AWS function) does not load the code that assumes the role (the ingest
 * loads it with its live lookups, when they are on).
 */
export const MEMBER_ROLE_NAME = /^[\w+=,.@-]{1,64}$/;
