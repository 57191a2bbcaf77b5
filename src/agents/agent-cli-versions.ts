/**
 * The agent CLIs' pinned versions (agent-clis/package.json, the one list the images and the
 * Ansible role install) and how a version found somewhere is read and compared with them. `doctor`
 * uses this for each backend: the local machine and ssh hosts are asked (`<cli> --version` where the
 * worker looks: PATH /usr/local/bin:/usr/bin:/bin), a baked GCE image says in its labels.
 */
import { readFileSync } from "node:fs";
import type { AgentPreset } from "./presets.js";

/** The presets whose CLI is pinned, with its npm package and the command the preset runs. */
export const PINNED_AGENT_CLIS = [
  { preset: "claude-code", bin: "claude", pkg: "@anthropic-ai/claude-code" },
  { preset: "codex", bin: "codex", pkg: "@openai/codex" },
  { preset: "opencode", bin: "opencode", pkg: "opencode-ai" },
] as const satisfies readonly { preset: AgentPreset; bin: string; pkg: string }[];

export type PinnedAgentCli = (typeof PINNED_AGENT_CLIS)[number];

/** Where the worker finds the agent's command, in and out of the sandbox (worker/lib/processes.mjs). */
export const WORKER_AGENT_PATH = "/usr/local/bin:/usr/bin:/bin";

/** Beside dist/ and src/ alike: the repository's (and the image's /app) agent-clis/package.json. */
const PINNED_LIST = new URL("../../agent-clis/package.json", import.meta.url);

/** npm package → pinned version. */
export function readPinnedVersions(file: URL | string = PINNED_LIST): Record<string, string> {
  return (JSON.parse(readFileSync(file, "utf8")) as { dependencies: Record<string, string> }).dependencies;
}

/** The version in a CLI's `--version` answer ("2.1.332 (Claude Code)", "codex-cli 0.171.0"), or null. */
export function parseCliVersion(output: string): string | null {
  return /\b(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]{1,40})?)\b/.exec(output.slice(0, 500))?.[1] ?? null;
}

/**
 * GCE labels a baked image carries for each CLI (ansible/bake-image.sh): label values allow only
 * lowercase letters, digits, `-` and `_`, so 2.1.332 is written 2_1_332.
 */
export function imageLabelKey(cli: PinnedAgentCli): string {
  return `agent-cli-${cli.preset}`;
}

export function versionFromImageLabel(value: string | undefined): string | null {
  return value !== undefined && /^\d+(_\d+){2}$/.test(value) ? value.replaceAll("_", ".") : null;
}

/** The OCI label k8s/worker.Dockerfile (and the controller's Dockerfile) put on the image: `<pkg>@<version>` separated by spaces. */
export const AGENT_CLIS_IMAGE_LABEL = "io.agent-work.agent-clis";

/** The label's value for a pinned list: what the Dockerfiles must say (a test compares them). */
export function agentClisLabelValue(pinned: Record<string, string>): string {
  return PINNED_AGENT_CLIS.map((c) => `${c.pkg}@${pinned[c.pkg]}`).join(" ");
}

/** What was found for one CLI somewhere: its version, `null` when it is not there, or `unreadable` when it answered no version. */
export type FoundVersion = string | null | { unreadable: string };

export interface VersionComparison {
  cli: PinnedAgentCli;
  pinned: string;
  found: FoundVersion;
  /** found and equal to the pinned version */
  same: boolean;
}

export function compareWithPinned(found: Partial<Record<PinnedAgentCli["bin"], FoundVersion>>, pinned: Record<string, string>): VersionComparison[] {
  return PINNED_AGENT_CLIS.map((cli) => {
    const f = found[cli.bin] ?? null;
    const want = pinned[cli.pkg] ?? "(not pinned)";
    return { cli, pinned: want, found: f, same: typeof f === "string" && f === want };
  });
}
