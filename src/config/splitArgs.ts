/**
 * Splits an argument string the way a POSIX shell would for words and quotes, without running a shell:
 * single quotes are literal, double quotes allow \" and \\, a backslash outside quotes escapes the next character.
 * No expansion of variables, globs or substitutions.
 */
export function splitArgs(input: string): string[] {
  const args: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < input.length; i++) {
    const ch = input[i]!;
    if (quote === "'") {
      if (ch === "'") quote = null;
      else current += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = null;
      else if (ch === '\\' && (input[i + 1] === '"' || input[i + 1] === '\\')) current += input[++i];
      else current += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === '\\') {
      if (i + 1 >= input.length) throw new Error('arguments that do not end with a lone backslash');
      current += input[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) args.push(current);
      current = '';
      inWord = false;
    } else {
      current += ch;
      inWord = true;
    }
  }
  if (quote) throw new Error(`arguments with balanced quotes (unclosed ${quote})`);
  if (inWord) args.push(current);
  return args;
}
