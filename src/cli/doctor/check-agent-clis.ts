import { spawnSync } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  compareWithPinned,
  parseCliVersion,
  PINNED_AGENT_CLIS,
  readPinnedVersions,
  WORKER_AGENT_PATH,
  type FoundVersion,
  type PinnedAgentCli,
} from "../../agents/agent-cli-versions.js";
import type { AgentPreset } from "../../agents/presets.js";
import type { DoctorCheck } from "./doctor-check.js";

/**
 * The agent CLIs on this machine, as the local backend's worker would find them: `<cli> --version`
 * with the worker's PATH (never this shell's), each in a throwaway HOME, 20 s at most.
 */
export function localAgentVersions(searchPath = WORKER_AGENT_PATH): Record<string, FoundVersion> {
  const home = mkdtempSync(path.join(os.tmpdir(), "agent-work-doctor-"));
  try {
    const found: Record<string, FoundVersion> = {};
    for (const cli of PINNED_AGENT_CLIS) {
      const file = searchPath
        .split(":")
        .filter((d) => path.isAbsolute(d))
        .map((d) => path.join(d, cli.bin))
        .find(isExecutableFile);
      if (!file) {
        found[cli.bin] = null;
        continue;
      }
      const r = spawnSync(file, ["--version"], {
        encoding: "utf8",
        timeout: 20_000,
        env: { PATH: searchPath, HOME: home, LANG: "C.UTF-8" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      const said = `${r.stdout ?? ""}\n${r.stderr ?? ""}`;
      found[cli.bin] = parseCliVersion(said) ?? { unreadable: (r.error?.message ?? said).trim().split("\n")[0]!.slice(0, 120) || `exit ${r.status}` };
    }
    return found;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function shown(found: FoundVersion): string {
  // What a CLI (or a host) said is data: printable ASCII only, cut short, before it reaches a terminal.
  return found === null
    ? "not installed"
    : typeof found === "string"
      ? found
      : `no version in its answer (${found.unreadable.replace(/[^\x20-\x7e]/g, "").slice(0, 120)})`;
}

/**
 * One line per pinned CLI for one place (`local`, `ssh host build-1`, `gce image …`): ok when it
 * has the pinned version; a different or unreadable version is a warning naming both; a missing
 * CLI fails for the controller's default agent (its jobs would fail there) and is only noted for
 * the others (repositories that pick them would fail there).
 */
export function reportAgentVersions(
  where: string,
  found: Partial<Record<PinnedAgentCli["bin"], FoundVersion>>,
  defaultAgent: AgentPreset,
  add: (check: DoctorCheck) => void,
  /** The fix for one CLI here, e.g. `npm install -g <pkg>@<version>`. */
  install: (cli: PinnedAgentCli, pinned: string) => string,
  pinned: Record<string, string> = readPinnedVersions(),
): void {
  for (const c of compareWithPinned(found, pinned)) {
    const name = `${where}: ${c.cli.bin} (${c.cli.preset})`;
    if (c.same) {
      add({ name, status: "ok", detail: `${c.pinned}, the pinned version` });
    } else if (c.found === null) {
      const isDefault = c.cli.preset === defaultAgent;
      add({
        name,
        status: isDefault ? "fail" : "skip",
        detail: `not installed where the worker looks (PATH ${WORKER_AGENT_PATH}); ${isDefault ? `DEFAULT_AGENT is ${defaultAgent}, so jobs fail there` : `only repositories that choose ${c.cli.preset} need it`}`,
        fix: install(c.cli, c.pinned),
      });
    } else {
      add({
        name,
        status: "warn",
        detail: `${shown(c.found)}, but agent-clis/package.json pins ${c.pinned}: that version is not the one the presets are tested with`,
        fix: install(c.cli, c.pinned),
      });
    }
  }
}
