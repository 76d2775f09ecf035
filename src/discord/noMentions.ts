/** Pings nobody, in the REST API's spelling: not @everyone, not roles, not users, not the replied-to author. */
export const NO_MENTIONS = { parse: [] as never[], replied_user: false };

/** The same, in discord.js's spelling (interaction replies). */
export const NO_MENTIONS_JS = { parse: [], repliedUser: false } as const;
