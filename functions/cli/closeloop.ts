// Placeholder until the CLI lands in this work.
export async function main(_argv: string[]): Promise<number> {
  return 0;
}
