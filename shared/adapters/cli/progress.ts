/** A progress bar on stderr, shown only for long inputs on a terminal. */
export class ProgressBar {
  private last = 0;
  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly enabled = Boolean(process.stderr.isTTY) && total >= 200,
  ) {}

  tick(done: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 80 && done < this.total) return;
    this.last = now;
    const width = 30;
    const ratio = this.total === 0 ? 1 : Math.min(1, done / this.total);
    const filled = Math.round(ratio * width);
    this.out.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.total}`);
  }

  done(): void {
    if (this.enabled) this.out.write('\n');
  }
}
