/** Writes the generated `/agent help` text into README.md between its markers (npm run readme-help). */
import { readFileSync, writeFileSync } from "node:fs";
import { renderHelp } from "../src/commands/render-help.js";

const file = new URL("../README.md", import.meta.url);
const readme = readFileSync(file, "utf8");
const help = renderHelp({ requiredPermission: "write", triggerLabel: "agent-work" });
const block = `<!-- help:start -->\n${help}\n<!-- help:end -->`;
if (!/<!-- help:start -->[\s\S]*?<!-- help:end -->/.test(readme)) {
  console.error("README.md has no <!-- help:start --> … <!-- help:end --> markers");
  process.exit(1);
}
writeFileSync(file, readme.replace(/<!-- help:start -->[\s\S]*?<!-- help:end -->/, block));
console.log("README.md help updated");
