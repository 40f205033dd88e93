/** Types of app-zip.mjs (tests import it). */
export function azureAppZip(root: string): { zip: string; files: string[] };
