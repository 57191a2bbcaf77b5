/**
 * Quotes one word for a POSIX shell: single quotes, with each `'` written as `'\''`. Everything a
 * remote command carries that is not a constant of this code goes through here, so a path or name
 * can never become shell syntax on the worker host.
 */
export function shellQuote(value: string): string {
  // A NUL byte would cut the command short on the remote side, silently changing its meaning.
  if (value.includes("\0")) throw new Error("a NUL byte cannot be passed to a remote shell");
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
