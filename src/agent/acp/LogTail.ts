/** The last lines an agent logged (stderr, non-protocol stdout), each cut to a length: bounded whatever it prints. */
export class LogTail {
  private readonly lines: string[] = [];
  private readonly maxLines: number;
  private readonly maxChars: number;

  constructor(maxLines: number, maxChars: number) {
    this.maxLines = maxLines;
    this.maxChars = maxChars;
  }

  add(line: string): void {
    const clean = line.replace(/\r$/, '');
    this.lines.push(clean.length > this.maxChars ? `${clean.slice(0, this.maxChars)}…` : clean);
    if (this.lines.length > this.maxLines) this.lines.shift();
  }

  text(): string {
    return this.lines.join('\n');
  }
}
