/**
 * Everything that depends on how one agent CLI draws its terminal, in one place, so a new kiro-cli release means
 * editing one object. Patterns are matched against rendered screen text (after the headless terminal), never raw bytes.
 */
export interface AgentProfile {
  readonly name: string;
  /**
   * The input prompt, matched against the cursor line up to the cursor. A cross-check only: a read is known by the
   * line editor's bracketed-paste marker (`readMarker`); the prompt also serves the quiet-period fallback.
   */
  readonly prompt: RegExp;
  /** The DEC private mode the line editor sets for the length of every input read (2004: bracketed paste). */
  readonly readMarker: number | undefined;
  /** A line that asks for permission to run a tool; the read that follows it is not the end of the turn. */
  readonly permission: RegExp;
  /** Lines that are chrome, not reply: spinners, credits/time footers, hints. Dropped from the reply text. */
  readonly noise: readonly RegExp[];
  /** Text the agent draws before reply text, removed where it is drawn in one of `replyPrefixColors`. */
  readonly replyPrefix: string;
  /** Palette colours of the reply prefix (one per version), which tell it apart from a reply line starting `> `. */
  readonly replyPrefixColors: readonly number[];
  /**
   * Output before the first read that means the agent cannot start, with the message the user sees. `waits`: the
   * agent then waits for an answer (a menu), so the start ends at once instead of at the agent's exit.
   */
  readonly fatal: readonly { readonly pattern: RegExp; readonly message: string; readonly waits?: boolean }[];
  /** Arguments appended to resume the conversation of the working directory, when the agent supports it. */
  readonly resumeArgs: readonly string[];
  /** Arguments appended when every tool is trusted. */
  readonly trustAllArgs: readonly string[];
  /** Arguments always appended: no hard wrapping of replies at the terminal width. */
  readonly fixedArgs: readonly string[];
  /** Workspace settings file, relative to the agent's working directory, written before every spawn. */
  readonly settingsFile: string | undefined;
  /** The settings written there (a flat JSON object of dotted keys, as kiro stores them). */
  readonly settings: Readonly<Record<string, boolean | number | string>>;
  /**
   * Visible character put before a message whose first character the agent would dispatch (`!` shell, `/` command,
   * `@` prompt), and before an `@` that follows whitespace (file inlining). Zero-width characters do not work:
   * the agent deletes them before dispatch.
   */
  readonly literalPrefix: string;
  /** Bytes that submit the typed message. */
  readonly submit: string;
  /** Bytes that interrupt the current turn. */
  readonly interrupt: string;
  /** Replies to the permission prompt. */
  readonly answers: { readonly allow: string; readonly deny: string; readonly always: string };
}

/** kiro-cli chat --legacy-ui (the classic line-oriented UI of kiro-cli 2.x, 1.x colours too); shared/kiro-cli.md. */
export const kiroClassicProfile: AgentProfile = {
  name: 'kiro-cli classic',
  // `[agent] 7% λ ↯ !> ` with every piece optional; `kiro_default` shows no name.
  prompt: /^(?:\[[^\]\n]{1,64}\] ?)?(?:\d{1,3}% ?)?(?:λ ?)?(?:↯ ?)?!?> ?$/u,
  readMarker: 2004,
  permission: /Allow this action\?.*\[y\/n(?:\/t)?\]:/,
  noise: [
    /^\s*▸ Credits:.*$/u,
    /^\s*▸ Time:.*$/u,
    /^\s*[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]?\s*Thinking\.\.\.\s*$/u,
    /^\s*[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]?\s*\d+ of \d+ mcp servers initialized\..*$/u,
    /^\s*\(To exit the CLI, press Ctrl\+C.*$/,
  ],
  replyPrefix: '> ',
  // 2.x purple (\e[38;5;141m), 1.x green (\e[38;5;10m).
  replyPrefixColors: [141, 10],
  fatal: [
    {
      pattern: /You are not logged in\. Login now\?/,
      message: 'kiro-cli is not logged in on the bot host (run `kiro-cli login` there).',
      waits: true,
    },
    {
      pattern: /You are not logged in|Not logged in\.|Login is required/,
      message: 'kiro-cli is not logged in on the bot host (run `kiro-cli login` there).',
    },
    { pattern: /error: Model '.*' does not exist/, message: 'kiro-cli rejected the configured model.' },
    {
      pattern: /Session is active in another process/,
      message: 'kiro-cli says this thread’s conversation is open in another process; try again in a moment.',
    },
  ],
  resumeArgs: ['--resume'],
  trustAllArgs: ['--trust-all-tools'],
  fixedArgs: ['-w', 'never'],
  settingsFile: '.kiro/settings/cli.json',
  settings: {
    // Raw markdown reaches Discord with its fences, backticks and quotes.
    'chat.disableMarkdownRendering': true,
    // No grey hint after the first prompt.
    'chat.enablePromptHints': false,
    // `t` trusts at once instead of opening an arrow-key menu.
    'chat.disableGranularTrust': true,
    // Less start-up output to read past.
    'chat.greeting.enabled': false,
    // Kept on: `7% > ` cannot be mistaken for the reply prefix `> `, and it is the turn's context use.
    'chat.enableContextUsageIndicator': true,
  },
  literalPrefix: '\u00b7',
  submit: '\r',
  interrupt: '\x03',
  answers: { allow: 'y', deny: 'n', always: 't' },
};
