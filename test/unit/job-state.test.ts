import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { JOB_STATES, TERMINAL_STATES, allowedTransitions, canTransition, isActive, isTerminal } from "../../src/jobs/state.js";

describe("job state machine", () => {
  it("never leaves a terminal state", () => {
    for (const s of TERMINAL_STATES) expect(allowedTransitions(s)).toEqual([]);
  });

  it("reaches a terminal state from every state by some path", () => {
    for (const start of JOB_STATES) {
      const seen = new Set([start]);
      const queue = [start];
      while (queue.length) for (const n of allowedTransitions(queue.shift()!)) if (!seen.has(n)) (seen.add(n), queue.push(n));
      expect([...seen].some(isTerminal), start).toBe(true);
    }
  });

  it("keeps any random walk inside the table and ends in a terminal state within bounded steps", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 50 }), (choices) => {
        let s: (typeof JOB_STATES)[number] = "received";
        for (const c of choices) {
          const next = allowedTransitions(s);
          if (next.length === 0) break;
          const to = next[c % next.length]!;
          expect(canTransition(s, to)).toBe(true);
          s = to;
        }
        expect(JOB_STATES).toContain(s);
      }),
    );
  });

  it("counts only admitted, unfinished jobs as active", () => {
    expect(isActive("received")).toBe(false);
    expect(isActive("queued")).toBe(true);
    expect(isActive("running")).toBe(true);
    expect(isActive("succeeded")).toBe(false);
  });
});
