import type { NewJob } from "../../src/jobs/types.js";

/** A delivery's job as the store records it: an issue of octo/demo labelled by alice, a fresh delivery id each. */
export function newJob(over: Partial<NewJob> = {}): NewJob {
  return {
    deliveryId: `d-${Math.random()}`,
    installationId: 1,
    repoId: 42,
    owner: "octo",
    repo: "demo",
    number: 7,
    kind: "issue",
    trigger: "label",
    requester: "alice",
    title: "Fix it",
    body: "Please",
    cloneUrl: "https://github.com/octo/demo.git",
    defaultBranch: "main",
    instructions: null,
    ...over,
  };
}
