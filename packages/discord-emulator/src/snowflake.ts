/** Discord's epoch (2015-01-01), the zero of snowflake timestamps. */
export const DISCORD_EPOCH = 1420070400000n;

let increment = 0n;

/** A new 18-19 digit snowflake for now: timestamp << 22 | worker/process 0 | increment. */
export function snowflake(at = Date.now()): string {
  increment = (increment + 1n) & 0xfffn;
  return (((BigInt(at) - DISCORD_EPOCH) << 22n) | (1n << 17n) | increment).toString();
}

/** The creation time encoded in a snowflake, ms since the Unix epoch. */
export function snowflakeTime(id: string): number {
  return Number((BigInt(id) >> 22n) + DISCORD_EPOCH);
}
