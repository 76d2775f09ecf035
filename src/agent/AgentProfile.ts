/**
 * Everything that depends on how one agent CLI draws its terminal, in one place, so a new kiro-cli release means
 * editing one object. Patterns are matched against rendered screen text (after the headless terminal), never raw bytes.
 */
export interface AgentProfile {
  readonly name: string;
  /** The input prompt on the cursor line when the agent waits for a message. */
  readonly prompt: RegExp;
  /** A line that asks for permission to run a tool; the prompt that follows it is not the end of the turn. */
  readonly permission: RegExp;
  /** Lines that are chrome, not reply: spinners, credits/time footers, hints. Dropped from the reply text. */
  readonly noise: readonly RegExp[];
  /** Text the agent draws before reply text, removed where it is drawn in `replyPrefixColor`. */
  readonly replyPrefix: string;
  /** Palette colour of the reply prefix, which tells it apart from a reply line that merely starts with `> `. */
  readonly replyPrefixColor: number | undefined;
  /** Output before the first prompt that means the agent cannot start, with the message the user sees. */
  readonly fatal: readonly { readonly pattern: RegExp; readonly message: string }[];
  /** Arguments appended to resume the conversation of the working directory, when the agent supports it. */
  readonly resumeArgs: readonly string[];
  /** Arguments appended when every tool is trusted. */
  readonly trustAllArgs: readonly string[];
  /** How a multi-line message is typed so that it arrives as one turn. */
  readonly multiline: 'bracketed-paste' | 'join-lines';
  /** Bytes that submit the typed message. */
  readonly submit: string;
  /** Bytes that interrupt the current turn. */
  readonly interrupt: string;
  /** Replies to the permission prompt. */
  readonly answers: { readonly allow: string; readonly deny: string; readonly always: string };
  /** Whether the agent echoes typed input (those lines are not part of the reply). */
  readonly echoesInput: boolean;
}

/** kiro-cli chat --legacy-ui (the classic line-oriented UI); facts in shared/kiro-cli.md. */
export const kiroClassicProfile: AgentProfile = {
  name: 'kiro-cli classic',
  // `> `, `[agent] > `, `[agent] 16% λ > `, `!> ` when tools are trusted; nothing after it on the line.
  prompt: /^(?:\[[^\]\n]{1,64}\]\s*)?(?:\d{1,3}%\s*λ\s*)?!?>\s*$/u,
  permission: /Allow this action\?.*\[y\/n\/t\]:/,
  noise: [
    /^\s*▸ Credits:.*$/u,
    /^\s*▸ Time:.*$/u,
    /^\s*Thinking\.\.\.\s*$/,
    /^\s*\d+ of \d+ mcp servers initialized\..*$/,
    /^\s*\(To exit the CLI, press Ctrl\+C.*$/,
  ],
  replyPrefix: '> ',
  replyPrefixColor: 10,
  fatal: [
    {
      pattern: /You are not logged in/,
      message: 'kiro-cli is not logged in on the bot host (run `kiro-cli login` there).',
    },
    { pattern: /error: Model '.*' does not exist/, message: 'kiro-cli rejected the configured model.' },
  ],
  resumeArgs: ['--resume'],
  trustAllArgs: ['--trust-all-tools'],
  multiline: 'bracketed-paste',
  submit: '\r',
  interrupt: '\x03',
  answers: { allow: 'y', deny: 'n', always: 't' },
  echoesInput: true,
};
