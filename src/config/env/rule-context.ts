/** The environment as given: `process.env` in production, a plain record in tests. */
export type Env = Record<string, string | undefined>;

/**
 * What an area's cross-field rules read and write. They run after every variable was parsed, on
 * the values that parsed (a bad one is absent: its problem is already in `errors`), in the order
 * `loadControllerConfig` calls them, and add their problems to the same lists.
 */
export interface RuleContext {
  /** The raw environment: whether a variable was set at all, and the variables a rule names by value. */
  readonly env: Env;
  /** Every problem so far, each starting with its variable's name. */
  readonly errors: readonly string[];
  readonly warnings: string[];
  /** Records a problem with `name`, quoting its value when it was set (masked when secret). */
  readonly fail: (name: string, message: string) => void;
}
