#!/usr/bin/env node
// The demo's agent: a stand-in for a real coding agent, so `npm run demo` works offline and
// without a model key. It runs exactly where a real agent would (the real worker, the real
// sandbox): it reads the prompt, says what it does, fixes the demo repository's bug and exits 0.
import fs from "node:fs";

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (line) => console.log(`demo agent: ${line}`);

const prompt = fs.readFileSync(process.argv[2], "utf8");
const title = /^Title: (.+)$/m.exec(prompt)?.[1] ?? "the issue";
say(`read the issue: ${title}`);
await pause(800);
say("looking at greet.js");
const source = fs.readFileSync("greet.js", "utf8");
await pause(800);
if (!source.includes("Hello,${name}!")) {
  say("greet.js already greets correctly; nothing to change");
  process.exit(0);
}
say("found it: the greeting has no space after the comma and shouts");
fs.writeFileSync("greet.js", source.replace("Hello,${name}!", "Hello, ${name}."));
await pause(800);
say("ran the check: node test.js");
say('ok: greet("Mona") is "Hello, Mona."');
await pause(500);
say("done: 1 file changed");
