// Lint: a few type-aware rules that catch the bugs which lose jobs silently (docs/architecture.md,
// "Tooling"). Formatting is Prettier's job (prettier.config.js), not ESLint's.
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

const rules = {
  // A promise nobody awaits loses its rejection: a scheduler tick, a timer or a stream handler
  // that fails this way fails silently. Await it, `void` it with a comment, or catch and log.
  "@typescript-eslint/no-floating-promises": ["error", { ignoreVoid: true }],
  // An async function where a callback's return is ignored (setTimeout, on("data"), forEach).
  "@typescript-eslint/no-misused-promises": "error",
  "@typescript-eslint/await-thenable": "error",
  // `return promise` inside try/catch skips the catch and the finally's ordering.
  "@typescript-eslint/return-await": ["error", "in-try-catch"],
  // Adding a job state or an event kind must touch every switch over it.
  "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
  "@typescript-eslint/only-throw-error": "error",
  // An abort reason is typed `any` (the DOM's AbortSignal); rejecting with it is how a sleep
  // that honours a signal ends, as node:timers/promises does.
  "@typescript-eslint/prefer-promise-reject-errors": ["error", { allowThrowingAny: true }],
  "no-fallthrough": "error",
  "no-unsafe-finally": "error",
  "no-self-compare": "error",
  eqeqeq: ["error", "always", { null: "ignore" }],
};

// Every linted file, .ts and .mjs, from one TypeScript program (tsconfig.lint.json), built once per
// run. A program parses all the types of node_modules that the code reaches (2,600 files, 1.5
// million lines, 32 MB of them @google-cloud/compute's protos), so a second one over the same files
// costs as much again. `project`, not `projectService`: in a CLI run the project service also reads
// files from one program per tsconfig.json, but a file whose text ESLint changed before parsing it,
// as it changes a shebang line (src/cli/main.ts), gets a project of its own, a second full program;
// and it only finds tsconfigs named tsconfig.json, which must not allow .mjs (tsc would then type
// the worker imports that tests mark @ts-expect-error).
const parserOptions = { project: ["./tsconfig.lint.json"], tsconfigRootDir: import.meta.dirname };

export default defineConfig(
  {
    ignores: ["dist/**", "node_modules/**", "agent-clis/**", "coverage/**", "**/*.d.ts", "eslint.config.js", "prettier.config.js"],
  },
  {
    // An error: a directive that silences nothing (say, for no-explicit-any, which is not switched
    // on here) only tells the next reader a rule is on that is not.
    linterOptions: { reportUnusedDisableDirectives: "error" },
    plugins: { "@typescript-eslint": tseslint.plugin },
  },
  {
    files: ["**/*.ts"],
    languageOptions: { parser: tseslint.parser, parserOptions },
    rules,
  },
  {
    // The worker script and a few helpers are plain JavaScript: the same rules, with the types
    // TypeScript infers.
    files: ["worker/**/*.mjs", "scripts/**/*.mjs", "bench/**/*.mjs"],
    languageOptions: { parser: tseslint.parser, parserOptions },
    rules,
  },
);
